package main

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestResolveSecretsPrecedence(t *testing.T) {
	keyFile := writeFile(t, "key", "from-flag-file\n")
	cfgKeyFile := writeFile(t, "cfgkey", "from-config-file\r\n")
	jwtFile := writeFile(t, "jwt", "jwt-from-file")
	s := func(v string) *string { return &v }
	cases := []struct {
		name              string
		literal, cfgFile  string // config file: socketApiKey / apiKeyFile
		env               map[string]string
		flags             secretFlags
		wantKey, wantFrom string
		wantJWT           string
	}{
		{"config literal", "lit", "", nil, secretFlags{}, "lit", "config websocket.socketApiKey", ""},
		{"config file", "", cfgKeyFile, nil, secretFlags{}, "from-config-file", "config broker.apiKeyFile " + cfgKeyFile, ""},
		{"env over config", "lit", "", map[string]string{envAPIKey: "from-env"}, secretFlags{}, "from-env", "environment " + envAPIKey, ""},
		{"env over config file", "", cfgKeyFile, map[string]string{envAPIKey: "from-env"}, secretFlags{}, "from-env", "environment " + envAPIKey, ""},
		{"empty env is unset", "lit", "", map[string]string{envAPIKey: ""}, secretFlags{}, "lit", "config websocket.socketApiKey", ""},
		{"flag file over env", "lit", "", map[string]string{envAPIKey: "from-env"}, secretFlags{apiKeyFile: keyFile}, "from-flag-file", "-api-key-file " + keyFile, ""},
		{"jwt env", "", "", map[string]string{envJWTSecret: "jwt-env"}, secretFlags{}, "", "", "jwt-env"},
		{"jwt file over env", "", "", map[string]string{envJWTSecret: "jwt-env"}, secretFlags{jwtSecretFile: jwtFile}, "", "", "jwt-from-file"},
		{"jwt flag over env", "", "", map[string]string{envJWTSecret: "jwt-env"}, secretFlags{jwtSecret: s("jwt-argv")}, "", "", "jwt-argv"},
		{"nothing", "", "", nil, secretFlags{}, "", "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var o options
			o.broker.APIKey = tc.literal
			o.apiKeyFile = tc.cfgFile
			from, err := resolveSecrets(&o, tc.flags, func(k string) string { return tc.env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if o.broker.APIKey != tc.wantKey || from.apiKey != tc.wantFrom || o.broker.Auth.HS256Secret != tc.wantJWT {
				t.Fatalf("key %q from %q, jwt %q; want %q from %q, jwt %q",
					o.broker.APIKey, from.apiKey, o.broker.Auth.HS256Secret, tc.wantKey, tc.wantFrom, tc.wantJWT)
			}
		})
	}
}

// TestSecretsThroughRun: the same sources through the command, with the
// errors an operator sees. The secrets themselves never reach the log.
func TestSecretsThroughRun(t *testing.T) {
	good := writeFile(t, "good.json", `{"websocket":{"approvedSocketDomains":["localhost"]}}`)
	both := writeFile(t, "both.json", `{"websocket":{"socketApiKey":"a"},"broker":{"apiKeyFile":"/x"}}`)
	jwtBoth := writeFile(t, "jwtboth.json", `{"websocket":{},"broker":{"jwt":{"hs256Secret":"a","hs256SecretFile":"/x"}}}`)
	jwtCfgFile := writeFile(t, "jwtfile.json", `{"websocket":{},"broker":{"jwt":{"hs256SecretFile":"`+writeFile(t, "jwt", "sekrit-jwt\n")+`"}}}`)
	keyFile := writeFile(t, "key", "sekrit-file\n")
	empty := writeFile(t, "empty", "\n")
	missing := filepath.Join(t.TempDir(), "no-such-key")
	cases := []struct {
		name string
		env  map[string]string
		args []string
		code int
		want []string
	}{
		{"api key from env", map[string]string{envAPIKey: "sekrit-env"}, []string{"-config", good, "-check"}, 0,
			[]string{`"apiKeyFrom":"environment BROKER_SOCKET_API_KEY"`, "configuration is valid"}},
		{"api key from file", nil, []string{"-config", good, "-api-key-file", keyFile, "-check"}, 0,
			[]string{`"apiKeyFrom":"-api-key-file ` + keyFile, "configuration is valid"}},
		{"missing key file named", nil, []string{"-config", good, "-api-key-file", missing, "-check"}, 1,
			[]string{"cannot read secret", missing}},
		{"empty key file named", nil, []string{"-config", good, "-api-key-file", empty, "-check"}, 1,
			[]string{"file is empty", empty}},
		{"jwt secret from env is used", map[string]string{envJWTSecret: "sekrit-env"}, []string{"-config", good, "-jwt-public-key", writeFile(t, "k.pem", testPEM), "-check"}, 1,
			[]string{"auth"}}, // both an HS256 secret (from the env) and a public key: refused
		{"jwt secret from config file", nil, []string{"-config", jwtCfgFile, "-check"}, 0,
			[]string{`"jwtSecretFrom":"config broker.jwt.hs256SecretFile`, "configuration is valid"}},
		{"jwt argv warned", nil, []string{"-config", good, "-jwt-secret", "sekrit-argv", "-check"}, 0,
			[]string{"visible to every local user", "configuration is valid"}},
		{"jwt flag and file", nil, []string{"-config", good, "-jwt-secret", "a", "-jwt-secret-file", keyFile, "-check"}, 1,
			[]string{"-jwt-secret and -jwt-secret-file are both set"}},
		{"config key and key file", nil, []string{"-config", both, "-check"}, 1,
			[]string{"socketApiKey and broker.apiKeyFile are both set"}},
		{"config jwt secret and file", nil, []string{"-config", jwtBoth, "-check"}, 1,
			[]string{"hs256Secret and hs256SecretFile are both set"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var out bytes.Buffer
			if code := run(tc.args, &out, &out); code != tc.code {
				t.Fatalf("exit %d, want %d:\n%s", code, tc.code, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Fatalf("output does not mention %q:\n%s", w, out.String())
				}
			}
			if strings.Contains(out.String(), "sekrit") {
				t.Fatalf("a secret reached the log:\n%s", out.String())
			}
		})
	}
}

func TestVersionFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"-version"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	out := stdout.String()
	if !strings.HasPrefix(out, "broker ") || !strings.Contains(out, "go: "+runtime.Version()+" "+runtime.GOOS+"/"+runtime.GOARCH) {
		t.Fatalf("-version printed %q", out)
	}
	if stderr.Len() != 0 {
		t.Fatalf("-version logged %q", stderr.String())
	}
}

// TestConsoleLogFormat: -log-format console is readable text (level, message,
// key=value fields), without colour codes when the output is not a terminal.
func TestConsoleLogFormat(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"-log-format", "console", "-check"}, &out, &out); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
	s := out.String()
	if !strings.Contains(s, "INF configuration is valid") || !strings.Contains(s, `config="bundled config.example.json"`) {
		t.Fatalf("console output:\n%s", s)
	}
	if strings.Contains(s, "\x1b[") || strings.HasPrefix(s, "{") {
		t.Fatalf("colour codes or JSON in console output to a non-terminal: %q", s)
	}
}
