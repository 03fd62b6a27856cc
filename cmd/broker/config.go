package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/webinate/broker/broker"
	"github.com/webinate/broker/cluster"
)

// fileConfig is config.json: the original users-server "websocket" section
// plus an optional "broker" section with this broker's tunables (the same
// names as the flags, which override them).
type fileConfig struct {
	Websocket *websocketSection `json:"websocket"`
	Broker    *brokerSection    `json:"broker"`
	Cluster   *clusterSection   `json:"cluster"`
}

type websocketSection struct {
	Port                  *int        `json:"port"`
	ApprovedSocketDomains []string    `json:"approvedSocketDomains"`
	SocketAPIKey          *string     `json:"socketApiKey"`
	TLS                   *tlsSection `json:"tls"`
}

// tlsSection turns on wss:// on the public port: PEM file paths.
type tlsSection struct {
	Cert *string `json:"cert"` // certificate chain, leaf first
	Key  *string `json:"key"`
}

type brokerSection struct {
	Listen           *string     `json:"listen"`
	AdminAddr        *string     `json:"adminAddr"`
	Shards           *int        `json:"shards"`
	Pollers          *int        `json:"pollers"`
	ReadBuffer       *int        `json:"readBuffer"`
	WriteBuffer      *int        `json:"writeBuffer"`
	MaxMessage       *int        `json:"maxMessage"`
	MaxPending       *int        `json:"maxPending"`
	MaxPublish       *int64      `json:"maxPublish"`
	MaxConns         *int        `json:"maxConns"`
	MaxConnsPerIP    *int        `json:"maxConnsPerIP"`
	MaxConnsPerUser  *int        `json:"maxConnsPerUser"`
	MaxAcceptRate    *float64    `json:"maxAcceptRate"`
	MaxAcceptBurst   *int        `json:"maxAcceptBurst"`
	PingInterval     *duration   `json:"pingInterval"`
	IdleTimeout      *duration   `json:"idleTimeout"`
	HandshakeTimeout *duration   `json:"handshakeTimeout"`
	DrainPeriod      *duration   `json:"drainPeriod"`
	CloseTimeout     *duration   `json:"closeTimeout"`
	ShutdownTimeout  *duration   `json:"shutdownTimeout"`
	MessageRate      *float64    `json:"messageRate"`
	MessageBurst     *int        `json:"messageBurst"`
	BroadcastRate    *float64    `json:"broadcastRate"`
	BroadcastBurst   *int        `json:"broadcastBurst"`
	BroadcastBytes   *int        `json:"broadcastBytes"`
	BroadcastBBurst  *int        `json:"broadcastBytesBurst"`
	BroadcastNode    *int        `json:"broadcastNodeBytes"`
	MetaInflight     *int        `json:"metaInflight"`
	MetaInflightB    *int        `json:"metaInflightBytes"`
	MetaMaxPending   *int        `json:"metaMaxPending"`
	BackendTimeout   *duration   `json:"backendTimeout"`
	Linger           *duration   `json:"linger"`
	Compression      *string     `json:"compression"`
	CompressionMin   *int        `json:"compressionMin"`
	WriteWindow      *int        `json:"writeWindow"`
	NotSentLowat     *int        `json:"notsentLowat"`
	MaxLag           *duration   `json:"maxLag"`
	PublishLag       *duration   `json:"publishLag"`
	HistorySize      *int        `json:"historySize"`
	HistoryAge       *duration   `json:"historyAge"`
	MaxOutputMemory  *int64      `json:"maxOutputMemory"`
	PublishWait      *duration   `json:"publishWait"`
	Pprof            *bool       `json:"pprof"`
	ReusePort        *bool       `json:"reusePort"`
	APIKeyFile       *string     `json:"apiKeyFile"` // socketApiKey from a file (secrets.go)
	Targeting        *string     `json:"targeting"`
	LogLevel         *string     `json:"logLevel"`
	JWT              *jwtSection `json:"jwt"`
}

// jwtSection configures optional JWT identity for clients.
type jwtSection struct {
	HS256Secret   *string   `json:"hs256Secret"`
	HS256File     *string   `json:"hs256SecretFile"` // the secret from a file (secrets.go)
	PublicKeyFile *string   `json:"publicKeyFile"`   // PEM: RSA (RS256) or P-256 (ES256)
	UsernameClaim *string   `json:"usernameClaim"`
	Cookie        *string   `json:"cookie"`
	Required      *bool     `json:"required"`
	Leeway        *duration `json:"leeway"`
	RequireExp    *bool     `json:"requireExp"`
	Audience      *string   `json:"audience"`
	Issuer        *string   `json:"issuer"`
	RefreshWindow *duration `json:"refreshWindow"`
}

// duration reads "25s" style strings.
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("want a duration string such as \"30s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = duration(v)
	return nil
}

// options is what main runs with: the broker config plus process-level
// settings.
type options struct {
	broker          broker.Config
	shutdownTimeout time.Duration
	jwtKeyFile      string // read into broker.Auth.PublicKeyPEM
	apiKeyFile      string // broker.apiKeyFile, read by resolveSecrets
	jwtSecretFile   string // broker.jwt.hs256SecretFile, likewise
	tlsCertFile     string // websocket.tls.cert, read into broker.TLS.CertPEM
	tlsKeyFile      string // websocket.tls.key, read into broker.TLS.KeyPEM
	logLevel        string // broker.logLevel; "" means info
	cluster         cluster.Config
}

// knownTop are the sections the broker reads. Other top-level keys are
// reported as warnings, not errors: the original users-server config.json
// keeps other services' sections in the same file.
var knownTop = map[string]bool{"websocket": true, "broker": true, "cluster": true}

// parseConfig applies a config file onto o. Unknown keys inside the
// sections the broker owns are errors (a typo must not be ignored); unknown
// top-level keys are returned as warnings.
func parseConfig(data []byte, o *options) (warnings []string, err error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("config: not a JSON object: %w", err)
	}
	var unknown []string
	for k := range top {
		if !knownTop[k] {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		warnings = append(warnings, fmt.Sprintf("config: ignoring top-level key %q (not used by the broker)", k))
	}
	var fc fileConfig
	if raw, ok := top["websocket"]; ok {
		fc.Websocket = new(websocketSection)
		if err := strictDecode(raw, fc.Websocket); err != nil {
			return warnings, fmt.Errorf("config: websocket: %w", err)
		}
	}
	if raw, ok := top["broker"]; ok {
		fc.Broker = new(brokerSection)
		if err := strictDecode(raw, fc.Broker); err != nil {
			return warnings, fmt.Errorf("config: broker: %w", err)
		}
	}
	if raw, ok := top["cluster"]; ok {
		fc.Cluster = new(clusterSection)
		if err := strictDecode(raw, fc.Cluster); err != nil {
			return warnings, fmt.Errorf("config: cluster: %w", err)
		}
		fc.Cluster.apply(&o.cluster)
	}
	if fc.Websocket == nil {
		return warnings, errors.New(`config: missing "websocket" section`)
	}
	ws := fc.Websocket
	if ws.Port != nil {
		if *ws.Port < 0 || *ws.Port > 65535 {
			return warnings, fmt.Errorf("config: websocket.port %d: must be 0..65535", *ws.Port)
		}
		o.broker.ListenAddr = fmt.Sprintf(":%d", *ws.Port)
	}
	if ws.ApprovedSocketDomains != nil {
		o.broker.ApprovedOrigins = ws.ApprovedSocketDomains
	}
	if ws.SocketAPIKey != nil {
		o.broker.APIKey = *ws.SocketAPIKey
	}
	if ws.TLS != nil {
		set(&o.tlsCertFile, ws.TLS.Cert)
		set(&o.tlsKeyFile, ws.TLS.Key)
	}
	if b := fc.Broker; b != nil {
		if b.APIKeyFile != nil && ws.SocketAPIKey != nil {
			return warnings, errors.New("config: websocket.socketApiKey and broker.apiKeyFile are both set: use one")
		}
		if j := b.JWT; j != nil && j.HS256Secret != nil && j.HS256File != nil {
			return warnings, errors.New("config: broker.jwt.hs256Secret and hs256SecretFile are both set: use one")
		}
		set(&o.apiKeyFile, b.APIKeyFile)
		set(&o.broker.ReusePort, b.ReusePort)
		set(&o.broker.ListenAddr, b.Listen)
		set(&o.broker.AdminAddr, b.AdminAddr)
		set(&o.broker.Shards, b.Shards)
		set(&o.broker.Pollers, b.Pollers)
		set(&o.broker.ReadBufferSize, b.ReadBuffer)
		set(&o.broker.SocketWriteBuffer, b.WriteBuffer)
		set(&o.broker.MaxMessageSize, b.MaxMessage)
		set(&o.broker.MaxPendingBytes, b.MaxPending)
		set(&o.broker.MaxPublishBytes, b.MaxPublish)
		set(&o.broker.MaxConns, b.MaxConns)
		set(&o.broker.MaxConnsPerIP, b.MaxConnsPerIP)
		set(&o.broker.MaxConnsPerUser, b.MaxConnsPerUser)
		set(&o.broker.MaxAcceptRate, b.MaxAcceptRate)
		set(&o.broker.MaxAcceptBurst, b.MaxAcceptBurst)
		setDur(&o.broker.PingInterval, b.PingInterval)
		setDur(&o.broker.IdleTimeout, b.IdleTimeout)
		setDur(&o.broker.HandshakeTimeout, b.HandshakeTimeout)
		setDur(&o.broker.DrainPeriod, b.DrainPeriod)
		setDur(&o.broker.CloseTimeout, b.CloseTimeout)
		setDur(&o.shutdownTimeout, b.ShutdownTimeout)
		set(&o.broker.MessageRate, b.MessageRate)
		set(&o.broker.MessageBurst, b.MessageBurst)
		set(&o.broker.BroadcastRate, b.BroadcastRate)
		set(&o.broker.BroadcastBurst, b.BroadcastBurst)
		set(&o.broker.BroadcastBytes, b.BroadcastBytes)
		set(&o.broker.BroadcastBytesBurst, b.BroadcastBBurst)
		set(&o.broker.BroadcastNodeBytes, b.BroadcastNode)
		set(&o.broker.MetaInflight, b.MetaInflight)
		set(&o.broker.MetaInflightBytes, b.MetaInflightB)
		set(&o.broker.MetaMaxPending, b.MetaMaxPending)
		setDur(&o.broker.BackendTimeout, b.BackendTimeout)
		setDur(&o.broker.Linger, b.Linger)
		set(&o.broker.Compression, b.Compression)
		set(&o.broker.CompressionMin, b.CompressionMin)
		set(&o.broker.WriteWindow, b.WriteWindow)
		set(&o.broker.NotSentLowat, b.NotSentLowat)
		setDur(&o.broker.MaxLag, b.MaxLag)
		setDur(&o.broker.PublishLag, b.PublishLag)
		set(&o.broker.HistorySize, b.HistorySize)
		setDur(&o.broker.HistoryAge, b.HistoryAge)
		set(&o.broker.MaxOutputMemory, b.MaxOutputMemory)
		setDur(&o.broker.PublishWait, b.PublishWait)
		set(&o.broker.Pprof, b.Pprof)
		set(&o.broker.Targeting, b.Targeting)
		set(&o.logLevel, b.LogLevel)
		if j := b.JWT; j != nil {
			a := &o.broker.Auth
			set(&a.HS256Secret, j.HS256Secret)
			set(&o.jwtSecretFile, j.HS256File)
			set(&o.jwtKeyFile, j.PublicKeyFile)
			set(&a.UsernameClaim, j.UsernameClaim)
			set(&a.Cookie, j.Cookie)
			set(&a.Required, j.Required)
			setDur(&a.Leeway, j.Leeway)
			set(&a.RequireExp, j.RequireExp)
			set(&a.Audience, j.Audience)
			set(&a.Issuer, j.Issuer)
			setDur(&o.broker.RefreshWindow, j.RefreshWindow)
		}
	}
	return warnings, nil
}

func set[T any](dst *T, v *T) {
	if v != nil {
		*dst = *v
	}
}

func setDur(dst *time.Duration, v *duration) {
	if v != nil {
		*dst = time.Duration(*v)
	}
}

// strictDecode decodes one section, naming an unknown key.
func strictDecode(raw json.RawMessage, v any) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		// encoding/json says `json: unknown field "x"`; keep the field name
		// and drop the package prefix.
		return errors.New(strings.TrimPrefix(err.Error(), "json: "))
	}
	return nil
}
