package envexpand

import (
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	env := map[string]string{"REG": "quay.io", "PW": "s3cr$t", "EMPTY": ""}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	tests := []struct {
		in, want, err string
	}{
		{in: "plain", want: "plain"},
		{in: "$REG/ns/app", want: "quay.io/ns/app"},
		{in: "${REG}/ns/app", want: "quay.io/ns/app"},
		{in: "x${REG}y", want: "xquay.ioy"},
		{in: "$PW", want: "s3cr$t"},
		{in: "$EMPTY", want: ""},
		{in: "a$$b", want: "a$b"},
		{in: "cost $5", want: "cost $5"},
		{in: "trailing $", want: "trailing $"},
		{in: "$NOPE", err: `environment variable "NOPE" is not set`},
		{in: "${NOPE}", err: `environment variable "NOPE" is not set`},
		{in: "${REG", err: "unterminated ${"},
		{in: "${1X}", err: "malformed variable reference ${1X}"},
		// the forms a rule file uses (they were rules.ExpandEnv's tests)
		{in: "${REG}/${EMPTY}x/app", want: "quay.io/x/app"},
		{in: "$REGx", err: `environment variable "REGx" is not set`},
		{in: "x$EMPTY-y", want: "x-y"},
		{in: "$REG$REG", want: "quay.ioquay.io"},
		{in: "$$REG", want: "$REG"},
		{in: "$1 $- $/", want: "$1 $- $/"},
		{in: "${}", err: "malformed variable reference ${}"},
		{in: "${REG:-x}", err: "malformed variable reference ${REG:-x}"},
	}
	for _, tc := range tests {
		got, err := Expand(tc.in, lookup)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Expand(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("Expand(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestExpandNilLookupUsesTheEnvironment(t *testing.T) {
	t.Setenv("IMAGESYNC_TEST_REG", "env.io")
	if got, err := Expand("$IMAGESYNC_TEST_REG/x", nil); err != nil || got != "env.io/x" {
		t.Errorf("got %q, %v", got, err)
	}
}

func TestExpandErrorHidesValue(t *testing.T) {
	_, err := Expand("hunter2${", func(string) (string, bool) { return "", false })
	if err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("error leaks the value: %v", err)
	}
}
