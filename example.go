// Package project holds the project's bundled example configuration. The
// broker binary starts with it when no -config is given, so a fresh
// checkout runs as a single node with no external services.
package project

import _ "embed"

// ExampleConfig is config.example.json, byte for byte.
//
//go:embed config.example.json
var ExampleConfig []byte
