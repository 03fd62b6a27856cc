package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/webinate/broker/bench/chart"
)

// chartMain is "bench chart": SVG charts from result JSON files.
func chartMain(args []string) int {
	fs := flag.NewFlagSet("bench chart", flag.ContinueOnError)
	out := fs.String("out", "charts", "directory for the SVG files")
	title := fs.String("title", "", "prefix of every chart title (e.g. the case name)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: bench chart [-out DIR] [-title T] result.json...\n"+
			"Draws %s, %s and %s against subscribers, one series per result label\n"+
			"(bench -label); repeats with the same label and subscriber count are reduced to their median.\n",
			chart.LatencyFile, chart.DeliveriesFile, chart.MemoryFile)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	results, err := chart.Load(fs.Args())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	paths, err := chart.Write(*out, *title, results)
	for _, p := range paths {
		fmt.Println(p)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
