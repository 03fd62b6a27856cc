package chart

import (
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/webinate/broker/bench"
)

// fabricate writes one result file per label with runs at two subscriber
// counts (and a repeat, to exercise the median).
func fabricate(t *testing.T, dir, label string, scale float64) string {
	t.Helper()
	var paths []string
	for i, subs := range []int{1000, 5000, 5000} {
		r := bench.Result{Scenario: bench.ScenarioFanout, Label: label}
		r.Fanout.Subscribers = subs
		r.Fanout.DeliveriesPerSec = scale * float64(subs) * 100
		r.Latency = bench.Latency{Count: 10, P50Ms: scale * float64(subs) / 100, P99Ms: scale * float64(subs) / 10}
		r.Server.RSSPeakBytes = int64(scale * float64(subs) * 2000)
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, label+"-"+string(rune('a'+i))+".json")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return strings.Join(paths, "\n")
}

func TestWriteCharts(t *testing.T) {
	dir := t.TempDir()
	files := strings.Split(fabricate(t, dir, "broker", 1)+"\n"+fabricate(t, dir, "baseline", 10), "\n")
	// A non-fanout result is skipped, not charted.
	idle, _ := json.Marshal(bench.Result{Scenario: bench.ScenarioIdle, Label: "broker"})
	idlePath := filepath.Join(dir, "idle.json")
	if err := os.WriteFile(idlePath, idle, 0o644); err != nil {
		t.Fatal(err)
	}
	results, err := Load(append(files, idlePath))
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 6 {
		t.Fatalf("loaded %d fanout results, want 6", len(results))
	}
	out := filepath.Join(dir, "charts")
	paths, err := Write(out, "fanout-max", results)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{LatencyFile, DeliveriesFile, MemoryFile}
	if len(paths) != len(want) {
		t.Fatalf("wrote %v, want %v", paths, want)
	}
	for _, name := range want {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			t.Fatalf("%s is empty", name)
		}
		checkSVG(t, name, b)
		for _, label := range []string{"broker", "baseline"} {
			if !strings.Contains(string(b), label) {
				t.Errorf("%s has no %s series", name, label)
			}
		}
	}
}

// checkSVG parses b to the end as XML with an <svg> root.
func checkSVG(t *testing.T, name string, b []byte) {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(string(b)))
	root := ""
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: not well-formed XML: %v", name, err)
		}
		if se, ok := tok.(xml.StartElement); ok && root == "" {
			root = se.Name.Local
		}
	}
	if root != "svg" {
		t.Errorf("%s: root element %q, want svg", name, root)
	}
}

func TestMedianAndNoResults(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median odd = %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Errorf("median even = %v", m)
	}
	if _, err := Write(t.TempDir(), "", nil); err == nil {
		t.Error("Write with no results: want an error")
	}
}
