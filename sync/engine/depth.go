package engine

import (
	"context"
	"fmt"

	"github.com/imagesync/imagesync/oci"
)

// maxIndexDepth bounds how deep indexes may nest (an index of indexes of
// …). Real images nest one or two levels; a registry can pre-build a chain
// of any length, and each level costs a request and a stack frame.
const maxIndexDepth = 8

type depthKey struct{}

// deeper returns ctx one index level down, or an error past maxIndexDepth.
func deeper(ctx context.Context, digest string) (context.Context, error) {
	d, _ := ctx.Value(depthKey{}).(int)
	if d >= maxIndexDepth {
		return ctx, oci.Permanent(fmt.Errorf("index %s: indexes nested more than %d deep", digest, maxIndexDepth))
	}
	return context.WithValue(ctx, depthKey{}, d+1), nil
}
