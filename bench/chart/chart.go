// Package chart draws SVG charts from bench result files (the JSON that
// cmd/bench -json writes): latency, deliveries per second and server memory
// per connection against the subscriber count, one series per result label
// (e.g. broker and baseline side by side).
//
// It is a separate package so that only cmd/bench links gonum/plot; the
// broker binary and the bench package itself do not.
package chart

import (
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/webinate/broker/bench"
)

// Unlabelled is the series name of results without a label.
const Unlabelled = "unlabelled"

// Chart file names written by Write.
const (
	LatencyFile    = "latency.svg"
	DeliveriesFile = "deliveries.svg"
	MemoryFile     = "memory.svg"
)

// Load reads result files. Files that are not fanout results are skipped,
// since every chart is per subscriber count.
func Load(paths []string) ([]*bench.Result, error) {
	var out []*bench.Result
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var r bench.Result
		if err := json.Unmarshal(b, &r); err != nil {
			return nil, fmt.Errorf("chart: %s: %w", p, err)
		}
		if r.Scenario == bench.ScenarioFanout {
			out = append(out, &r)
		}
	}
	return out, nil
}

// metric extracts one value from a result; ok false leaves the run out.
type metric func(r *bench.Result) (v float64, ok bool)

// Write draws LatencyFile, DeliveriesFile and MemoryFile into dir from
// fanout results and returns their paths. Runs with the same label and
// subscriber count (repeats) are reduced to their median. title, if not
// empty, prefixes every chart's title (e.g. the case name); pass the
// results of one case at a time, since nothing else separates them.
func Write(dir, title string, results []*bench.Result) ([]string, error) {
	if len(results) == 0 {
		return nil, errors.New("chart: no fanout results")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	prefix := ""
	if title != "" {
		prefix = title + ": "
	}
	charts := []struct {
		file, title, y string
		log            bool
		series         []struct {
			suffix string
			get    metric
		}
	}{
		{LatencyFile, "publish→receive latency", "ms (log)", true, []struct {
			suffix string
			get    metric
		}{
			{" p50", func(r *bench.Result) (float64, bool) { return r.Latency.P50Ms, r.Latency.Count > 0 }},
			{" p99", func(r *bench.Result) (float64, bool) { return r.Latency.P99Ms, r.Latency.Count > 0 }},
		}},
		{DeliveriesFile, "deliveries per second", "deliveries/s", false, []struct {
			suffix string
			get    metric
		}{
			{"", func(r *bench.Result) (float64, bool) { return r.Fanout.DeliveriesPerSec, true }},
		}},
		{MemoryFile, "server memory per connection (peak RSS / subscribers)", "bytes", false, []struct {
			suffix string
			get    metric
		}{
			{"", memoryPerConn},
		}},
	}
	var paths []string
	for _, c := range charts {
		p := plot.New()
		p.Title.Text = prefix + c.title
		p.X.Label.Text = "subscribers"
		p.Y.Label.Text = c.y
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
		if c.log {
			p.Y.Scale = plot.LogScale{}
			p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		}
		i := 0
		for _, label := range labels(results) {
			for _, s := range c.series {
				pts := points(results, label, s.get, c.log)
				if len(pts) == 0 {
					continue
				}
				line, marks, err := plotter.NewLinePoints(pts)
				if err != nil {
					return paths, fmt.Errorf("chart: %s: %w", c.file, err)
				}
				line.Color, marks.Color = seriesColor(i), seriesColor(i)
				marks.Shape = plotutil.Shape(i)
				if s.suffix == " p50" {
					line.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
				}
				p.Add(line, marks)
				p.Legend.Add(label+s.suffix, line, marks)
				i++
			}
		}
		if i == 0 {
			continue // nothing plottable (e.g. no server PID for memory)
		}
		path := filepath.Join(dir, c.file)
		if err := p.Save(7*vg.Inch, 4.5*vg.Inch, path); err != nil {
			return paths, fmt.Errorf("chart: %s: %w", c.file, err)
		}
		paths = append(paths, path)
	}
	return paths, nil
}

// memoryPerConn is the server's peak RSS over its subscribers; zero when
// the run did not sample the server.
func memoryPerConn(r *bench.Result) (float64, bool) {
	rss := r.Server.RSSPeakBytes
	if rss == 0 {
		rss = r.Server.RSSAfterBytes
	}
	if rss <= 0 || r.Fanout.Subscribers <= 0 {
		return 0, false
	}
	return float64(rss) / float64(r.Fanout.Subscribers), true
}

func labelOf(r *bench.Result) string {
	if r.Label == "" {
		return Unlabelled
	}
	return r.Label
}

func labels(results []*bench.Result) []string {
	var out []string
	for _, r := range results {
		if l := labelOf(r); !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	sort.Strings(out)
	return out
}

// points is the median of get per subscriber count for one label, sorted
// by subscribers. A log axis cannot show values ≤ 0, so they are dropped.
func points(results []*bench.Result, label string, get metric, positive bool) plotter.XYs {
	by := map[int][]float64{}
	for _, r := range results {
		if labelOf(r) != label {
			continue
		}
		if v, ok := get(r); ok && (!positive || v > 0) {
			n := r.Fanout.Subscribers
			by[n] = append(by[n], v)
		}
	}
	xs := make([]int, 0, len(by))
	for n := range by {
		xs = append(xs, n)
	}
	sort.Ints(xs)
	pts := make(plotter.XYs, len(xs))
	for i, n := range xs {
		pts[i].X, pts[i].Y = float64(n), median(by[n])
	}
	return pts
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// seriesColor is plotutil's palette, fixed per series index.
func seriesColor(i int) color.Color { return plotutil.Color(i) }
