package main

import (
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/rs/zerolog"

	"github.com/webinate/broker/cluster"
	"github.com/webinate/broker/internal/commalist"
)

// NATS credentials other than a creds file come from the environment,
// never from argv (README, Running a cluster).
const (
	envNATSUser     = "BROKER_NATS_USER"
	envNATSPassword = "BROKER_NATS_PASSWORD"
	envNATSToken    = "BROKER_NATS_TOKEN"
)

// clusterSection is config.json's optional "cluster" object.
type clusterSection struct {
	NATS           *string   `json:"nats"` // URL[,URL...]
	Name           *string   `json:"name"`
	Subject        *string   `json:"subject"`
	Stream         *string   `json:"stream"`
	CredsFile      *string   `json:"credsFile"`
	PublishTimeout *duration `json:"publishTimeout"`
	MaxQueued      *int      `json:"maxQueued"`
	UnhealthyAfter *duration `json:"unhealthyAfter"`
	StreamMaxAge   *duration `json:"streamMaxAge"`
	StreamMaxBytes *int64    `json:"streamMaxBytes"`
	Replicas       *int      `json:"replicas"`
}

// apply sets the section's values onto c.
func (s *clusterSection) apply(c *cluster.Config) {
	if s.NATS != nil {
		c.URLs = commalist.Split(*s.NATS)
	}
	set(&c.Subject, s.Subject)
	set(&c.Name, s.Name)
	set(&c.Stream, s.Stream)
	set(&c.CredsFile, s.CredsFile)
	setDur(&c.PublishTimeout, s.PublishTimeout)
	set(&c.MaxQueued, s.MaxQueued)
	setDur(&c.UnhealthyAfter, s.UnhealthyAfter)
	setDur(&c.StreamMaxAge, s.StreamMaxAge)
	set(&c.StreamMaxBytes, s.StreamMaxBytes)
	set(&c.Replicas, s.Replicas)
}

// clusterCredentials takes the NATS user/password or token from the
// environment; a creds file (config or -nats-creds) excludes them.
func clusterCredentials(c *cluster.Config, getenv func(string) string) (string, error) {
	user, pass, tok := getenv(envNATSUser), getenv(envNATSPassword), getenv(envNATSToken)
	if (user != "" || pass != "") && tok != "" {
		return "", errors.New("$" + envNATSUser + "/$" + envNATSPassword + " and $" + envNATSToken + " are both set: use one")
	}
	if c.CredsFile != "" && (user != "" || pass != "" || tok != "") {
		return "", errors.New("a NATS creds file and NATS credentials in the environment are both set: use one")
	}
	switch {
	case c.CredsFile != "":
		return "creds file " + c.CredsFile, nil
	case user != "" || pass != "":
		c.User, c.Password = user, pass
		return "environment " + envNATSUser + "/" + envNATSPassword, nil
	case tok != "":
		c.Token = tok
		return "environment " + envNATSToken, nil
	}
	return "", nil
}

// newBridge builds the NATS bridge when a NATS URL is configured, and nil
// otherwise (a single node).
func newBridge(o *options, log zerolog.Logger, getenv func(string) string) (*cluster.Bridge, error) {
	if len(o.cluster.URLs) == 0 {
		if o.cluster.CredsFile != "" {
			return nil, errors.New("cluster: a NATS creds file is set but no NATS URL (-nats)")
		}
		return nil, nil
	}
	from, err := clusterCredentials(&o.cluster, getenv)
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if o.cluster.Name == "" {
		o.cluster.Name = nodeName(o.broker.ListenAddr)
	}
	b, err := cluster.New(o.cluster, log)
	if err != nil {
		return nil, err
	}
	ev := log.Info().Strs("nats", o.cluster.URLs)
	if from != "" {
		ev.Str("natsCredentialsFrom", from)
	}
	ev.Msg("cluster mode")
	return b, nil
}

// nodeName names this node to NATS and to the other nodes (in their
// /stats when it holds their publishers): host and WebSocket port, unique
// for nodes sharing a host.
func nodeName(listen string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "broker"
	}
	if _, port, err := net.SplitHostPort(listen); err == nil && port != "" {
		return host + ":" + port
	}
	return host
}
