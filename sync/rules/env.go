package rules

import "github.com/imagesync/imagesync/internal/envexpand"

// ExpandEnv replaces $NAME and ${NAME} in s using lookup (os.LookupEnv when
// nil). NAME is [A-Za-z_][A-Za-z0-9_]*. `$$` is a literal `$`; a `$` not
// followed by a name start or `{` stays literal. An unset variable is an
// error naming it, and so is a malformed `${…}`. It is the same expansion
// the auth file uses (internal/envexpand).
func ExpandEnv(s string, lookup func(string) (string, bool)) (string, error) {
	return envexpand.Expand(s, lookup)
}
