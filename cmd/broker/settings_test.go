package main

import (
	"bytes"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/webinate/broker/broker"
)

// Every setting is spelled in several places: its flag, the flag's case in
// run, its config-file key, the README's flag table. These tests keep them
// from drifting apart again (a flag missing from the table, a Config field
// no file or flag can set, a table row for a flag that is gone).

// flagNames are the flags run defines, from its -h output.
func flagNames(t *testing.T) []string {
	t.Helper()
	var out, errb bytes.Buffer
	run([]string{"-h"}, &out, &errb)
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(errb.String(), -1) {
		names = append(names, m[1])
	}
	if len(names) < 20 {
		t.Fatalf("found only %d flags in -h output:\n%s", len(names), errb.String())
	}
	return names
}

// readmeFlags are the flags named in the first column of README.md's
// tables.
func readmeFlags(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `-") {
			continue
		}
		first := strings.SplitN(line[1:], "|", 2)[0]
		for _, m := range regexp.MustCompile("`-([a-z0-9-]+)").FindAllStringSubmatch(first, -1) {
			out[m[1]] = true
		}
	}
	return out
}

func TestFlagsMatchREADME(t *testing.T) {
	doc := readmeFlags(t)
	defined := map[string]bool{}
	for _, f := range flagNames(t) {
		defined[f] = true
		if !doc[f] {
			t.Errorf("flag -%s is not in README.md's flag tables", f)
		}
	}
	for f := range doc {
		if !defined[f] {
			t.Errorf("README.md documents -%s, which the broker does not define", f)
		}
	}
}

// Every flag reaches the configuration: it has a case in run's Visit
// switch (or is one of the few run reads directly).
func TestEveryFlagIsApplied(t *testing.T) {
	src := sources(t)
	direct := map[string]bool{"config": true, "check": true, "log-format": true, "version": true}
	for _, f := range flagNames(t) {
		if !direct[f] && !strings.Contains(src, `case "`+f+`"`) {
			t.Errorf("flag -%s has no case in run: it is parsed and ignored", f)
		}
	}
}

// Every broker.Config field can be set, by a flag or the config file.
func TestEveryConfigFieldIsSettable(t *testing.T) {
	src := sources(t)
	typ := reflect.TypeOf(broker.Config{})
	for i := range typ.NumField() {
		f := typ.Field(i).Name
		if !regexp.MustCompile(`(cfg|o\.broker|broker)\.` + f + `\b`).MatchString(src) {
			t.Errorf("broker.Config.%s is set by no flag and no config key", f)
		}
	}
}

// sources is this command's non-test Go source.
func sources(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if n := e.Name(); strings.HasSuffix(n, ".go") && !strings.HasSuffix(n, "_test.go") {
			data, err := os.ReadFile(n)
			if err != nil {
				t.Fatal(err)
			}
			b.Write(data)
		}
	}
	return b.String()
}
