package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestVersionBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	out, err := exec.Command(buildBroker(t), "-version").Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(out), "broker github.com/webinate/broker") || !strings.Contains(string(out), "\ngo: go") {
		t.Fatalf("-version printed %q", out)
	}
}

// buildBroker builds the broker binary into a temporary directory.
func buildBroker(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "broker")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// brokerProc is a broker process started by a test.
type brokerProc struct {
	cmd     *exec.Cmd
	started map[string]any // its "broker started" log line
	done    chan error
	// lines are its JSON log lines after "broker started" (lines that
	// arrive while nobody reads are dropped once 100 are queued).
	lines chan map[string]any
}

// startBroker runs bin with args, waits for its "broker started" line and
// kills it when the test ends if it is still running. Its log is drained
// in the background.
func startBroker(t *testing.T, bin string, env []string, args ...string) *brokerProc {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan map[string]any, 100)
	p := &brokerProc{cmd: cmd, done: make(chan error, 1), lines: lines}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				select {
				case lines <- m:
				default: // nobody is reading any more
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
	})
	p.started = waitLog(t, lines, "broker started")
	return p
}

// connections is the broker's /healthz connection count at admin.
func connections(t *testing.T, admin string) int {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h struct{ Connections int }
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatalf("healthz: %v", err)
	}
	return h.Connections
}

// wait waits for the process to exit and reports a non-zero exit.
func (p *brokerProc) wait(d time.Duration) error {
	select {
	case err := <-p.done:
		return err
	case <-time.After(d):
		return errors.New("did not exit in time")
	}
}
