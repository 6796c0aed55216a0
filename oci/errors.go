package oci

import "errors"

// PermanentError marks an error found by imagesync itself (an unsupported
// manifest, a digest that does not match) as not worth retrying.
type PermanentError struct{ Err error }

func (p *PermanentError) Error() string { return p.Err.Error() }
func (p *PermanentError) Unwrap() error { return p.Err }

// Permanent wraps err so that IsPermanent reports true.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports an error that is permanent whatever the store: one
// marked Permanent, an invalid reference, or an error that says so itself
// (a Permanent() bool method). A registry client knows more (statuses).
func IsPermanent(err error) bool {
	if err == nil {
		return false
	}
	var perm *PermanentError
	if errors.As(err, &perm) || errors.Is(err, ErrInvalidReference) {
		return true
	}
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// IsNotFound reports an error of any store that says what was asked for is
// not there: it has a NotFound() bool method answering true (a registry's
// 404 or *_UNKNOWN, a layout's missing name or file).
func IsNotFound(err error) bool {
	var nf interface{ NotFound() bool }
	return errors.As(err, &nf) && nf.NotFound()
}
