package credentials

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestRedactBase64AndUserPassword(t *testing.T) {
	set := &SecretSet{}
	set.AddCredentials("alice", "S3cr3t$Pa55")
	set.Add("tok-ABCDEFGH")
	pw, pair := "S3cr3t$Pa55", "alice:S3cr3t$Pa55"
	text := strings.Join([]string{
		"raw " + pw,
		"basic " + base64.StdEncoding.EncodeToString([]byte(pair)),
		"raw64 " + base64.RawURLEncoding.EncodeToString([]byte(pair)),
		"pw64 " + base64.StdEncoding.EncodeToString([]byte(pw)),
		"token " + "tok-ABCDEFGH" + " and " + base64.URLEncoding.EncodeToString([]byte("tok-ABCDEFGH")),
		"user alice stays",
	}, "\n")
	got := set.Redact(text)
	for _, leak := range []string{pw, "Pa55", base64.StdEncoding.EncodeToString([]byte(pair)), base64.RawURLEncoding.EncodeToString([]byte(pair)),
		base64.StdEncoding.EncodeToString([]byte(pw)), "tok-ABCDEFGH", base64.URLEncoding.EncodeToString([]byte("tok-ABCDEFGH"))} {
		if strings.Contains(got, leak) {
			t.Errorf("%q survives redaction:\n%s", leak, got)
		}
	}
	if !strings.Contains(got, "user alice stays") {
		t.Errorf("ordinary text was changed:\n%s", got)
	}
}

func TestStripURLQueries(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`Get "https://s3.example.com/bucket/blob?X-Amz-Signature=abc&X-Amz-Credential=AKIA": EOF`, `Get "https://s3.example.com/bucket/blob": EOF`},
		{`error="Get \"https://s3/b?X-Amz-Signature=abc\": EOF" status=1`, `error="Get \"https://s3/b\": EOF" status=1`},
		{`{"error":"Get \"https://s3/b?a=1\u0026X-Amz-Signature=abc\": EOF"}`, `{"error":"Get \"https://s3/b\": EOF"}`},
		{"PUT http://127.0.0.1:5000/v2/a/blobs/uploads/x?_state=SECRET&digest=sha256:1 failed", "PUT http://127.0.0.1:5000/v2/a/blobs/uploads/x failed"},
		{"see https://example.com/docs#part, then", "see https://example.com/docs then"},
		{"no url ?x=y here", "no url ?x=y here"},
		{"two: http://a/?x=1 http://b/c?y=2\n", "two: http://a/ http://b/c\n"},
	} {
		if got := StripURLQueries(tc.in); got != tc.want {
			t.Errorf("StripURLQueries(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
}

func TestDollarInPasswordNamesKeyNotPassword(t *testing.T) {
	p := writeFile(t, "auth.yaml", "harbor.example.com:\n  username: robot\n  password: S3cr3t$Pa55\n")
	_, err := LoadAuthFile(p, env(nil))
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{"auth.yaml:3", `key "harbor.example.com"`, `"password"`, "$$"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	for _, leak := range []string{"Pa55", "S3cr3t"} {
		if strings.Contains(msg, leak) {
			t.Errorf("error %q prints a part of the password (%q)", msg, leak)
		}
	}
	// $$ is the way to write it.
	p = writeFile(t, "auth2.yaml", "harbor.example.com:\n  username: robot\n  password: S3cr3t$$Pa55\n")
	af, err := LoadAuthFile(p, env(nil))
	if err != nil || af.Entries[0].Password != "S3cr3t$Pa55" {
		t.Fatalf("$$: %v", err)
	}
}
