package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The broker binary links only what it runs: the test-only and tooling
// dependencies of this module (an embedded NATS server for the cluster
// tests, a browser driver for the interop tests, the bench's chart
// library) must never reach it through an import that looks harmless.
func TestBinaryLinksOnlyWhatItRuns(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	banned := []string{
		"github.com/nats-io/nats-server", // cmd/natsd and the cluster tests only
		"github.com/chromedp",            // interop tests
		"gonum.org/v1/plot",              // bench charts
		"github.com/gorilla/websocket",   // the baseline and tests
		"github.com/HdrHistogram",        // the bench's histograms
		"github.com/webinate/broker/bench",
		"github.com/webinate/broker/interop",
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, b := range banned {
			if strings.HasPrefix(pkg, b) {
				t.Errorf("cmd/broker links %s", pkg)
			}
		}
	}
}
