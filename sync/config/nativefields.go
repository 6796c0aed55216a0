package config

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/imagesync/imagesync/internal/cfgfile"
	"github.com/imagesync/imagesync/internal/envexpand"
)

func (l *nativeLoader) mapFields(kv cfgfile.KeyValue, field string, known ...string) []cfgfile.KeyValue {
	v := kv.Value
	if v == nil || v.Kind != cfgfile.Map {
		l.fail(kv.Line, field, "must be a map (fields: %s)", strings.Join(known, ", "))
		return nil
	}
	var out []cfgfile.KeyValue
	for _, f := range v.Map {
		ok := false
		for _, k := range known {
			ok = ok || f.Key == k
		}
		if !ok {
			l.fail(f.Line, field+"."+f.Key, "unknown field (known: %s)", strings.Join(known, ", "))
			continue
		}
		out = append(out, f)
	}
	return out
}

func line(kv cfgfile.KeyValue) int {
	if kv.Value != nil && kv.Value.Line > 0 {
		return kv.Value.Line
	}
	return kv.Line
}

func (l *nativeLoader) str(kv cfgfile.KeyValue, field string) (string, bool) {
	if kv.Value == nil || kv.Value.Kind != cfgfile.String {
		l.fail(line(kv), field, "must be a string")
		return "", false
	}
	return kv.Value.Str, true
}

// expanded is a string field with $VAR expanded.
func (l *nativeLoader) expanded(kv cfgfile.KeyValue, field string) (string, bool) {
	s, ok := l.str(kv, field)
	if !ok {
		return "", false
	}
	out, err := envexpand.Expand(s, l.opt.LookupEnv)
	if err != nil {
		l.fail(line(kv), field, "%v", err)
		return "", false
	}
	return out, true
}

func (l *nativeLoader) path(kv cfgfile.KeyValue, field string) (string, bool) {
	p, ok := l.expanded(kv, field)
	if !ok {
		return "", false
	}
	if p == "" {
		l.fail(line(kv), field, "must be a file path")
		return "", false
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(filepath.Dir(l.file), p)
	}
	if _, err := os.Stat(p); err != nil {
		l.fail(line(kv), field, "%v", err)
		return "", false
	}
	return p, true
}

func (l *nativeLoader) boolean(kv cfgfile.KeyValue, field string) (bool, bool) {
	if kv.Value == nil || kv.Value.Kind != cfgfile.Bool {
		l.fail(line(kv), field, "must be true or false")
		return false, false
	}
	return kv.Value.Bool, true
}

func (l *nativeLoader) integer(kv cfgfile.KeyValue, field string, min int) (int, bool) {
	if kv.Value == nil || kv.Value.Kind != cfgfile.Number {
		l.fail(line(kv), field, "must be a whole number")
		return 0, false
	}
	n, err := strconv.Atoi(kv.Value.Str)
	if err != nil || n < min {
		l.fail(line(kv), field, "must be a whole number of at least %d, not %s", min, kv.Value.Str)
		return 0, false
	}
	return n, true
}

func (l *nativeLoader) number(kv cfgfile.KeyValue, field string) (float64, bool) {
	if kv.Value == nil || kv.Value.Kind != cfgfile.Number {
		l.fail(line(kv), field, "must be a number")
		return 0, false
	}
	f, err := strconv.ParseFloat(kv.Value.Str, 64)
	if err != nil || f <= 0 || math.IsInf(f, 0) || math.IsNaN(f) {
		l.fail(line(kv), field, "must be a number above 0, not %s", kv.Value.Str)
		return 0, false
	}
	return f, true
}

// strings is a string or a list of strings.
func (l *nativeLoader) strings(kv cfgfile.KeyValue, field string) ([]string, bool) {
	v := kv.Value
	switch {
	case v != nil && v.Kind == cfgfile.String:
		return []string{v.Str}, true
	case v != nil && v.Kind == cfgfile.List:
		out := []string{}
		ok := true
		for i, it := range v.List {
			if it == nil || it.Kind != cfgfile.String {
				ln := v.Line
				if it != nil && it.Line > 0 {
					ln = it.Line
				}
				l.fail(ln, fmt.Sprintf("%s[%d]", field, i), "must be a string")
				ok = false
				continue
			}
			out = append(out, it.Str)
		}
		return out, ok
	}
	l.fail(line(kv), field, "must be a string or a list of strings")
	return nil, false
}
