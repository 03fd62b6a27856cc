package main

import (
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestClusterConfigSection(t *testing.T) {
	var o options
	_, err := parseConfig([]byte(`{"websocket":{},"cluster":{"nats":"nats://a:4222, nats://b:4222","subject":"prod.broker","name":"edge-1","credsFile":"/etc/broker/nats.creds","publishTimeout":"2s","maxQueued":500}}`), &o)
	if err != nil {
		t.Fatal(err)
	}
	c := o.cluster
	if len(c.URLs) != 2 || c.URLs[1] != "nats://b:4222" || c.Subject != "prod.broker" || c.Name != "edge-1" || c.CredsFile != "/etc/broker/nats.creds" ||
		c.PublishTimeout != 2*time.Second || c.MaxQueued != 500 {
		t.Fatalf("cluster config %+v", c)
	}
	if _, err := parseConfig([]byte(`{"websocket":{},"cluster":{"url":"x"}}`), &options{}); err == nil || !strings.Contains(err.Error(), `cluster: unknown field "url"`) {
		t.Fatalf("unknown cluster key: %v", err)
	}
}

func TestClusterCredentialsFromEnvironment(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		name  string
		creds string
		env   map[string]string
		want  string // error substring, or "" for success
	}{
		{"user and password", "", map[string]string{envNATSUser: "u", envNATSPassword: "p"}, ""},
		{"token", "", map[string]string{envNATSToken: "t"}, ""},
		{"both kinds", "", map[string]string{envNATSUser: "u", envNATSToken: "t"}, "use one"},
		{"file and env", "/x.creds", map[string]string{envNATSToken: "t"}, "use one"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := options{}
			o.cluster.URLs = []string{"nats://127.0.0.1:1"}
			o.cluster.CredsFile = tc.creds
			b, err := newBridge(&o, zerolog.Nop(), env(tc.env))
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil || b == nil {
				t.Fatalf("newBridge: %v", err)
			}
			if o.cluster.Name == "" {
				t.Fatal("no default node name")
			}
			if o.cluster.User != tc.env[envNATSUser] || o.cluster.Token != tc.env[envNATSToken] {
				t.Fatalf("credentials not applied: %+v", o.cluster)
			}
		})
	}
	// No URL: a single node, no bridge.
	if b, err := newBridge(&options{}, zerolog.Nop(), env(nil)); err != nil || b != nil {
		t.Fatalf("single node: %v %v", b, err)
	}
}
