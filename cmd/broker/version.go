package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// versionString describes this binary from its embedded build information:
// module path and version, the VCS revision, time and dirty flag when the
// build recorded them (go build does inside a git checkout unless
// -buildvcs=false), and the Go version and platform.
func versionString() string {
	var b strings.Builder
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		fmt.Fprintf(&b, "broker (no build information)\n")
		fmt.Fprintf(&b, "go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return b.String()
	}
	path, version := bi.Main.Path, bi.Main.Version
	if path == "" {
		path = bi.Path
	}
	if version == "" {
		version = "(devel)"
	}
	fmt.Fprintf(&b, "broker %s %s\n", path, version)
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision", "vcs.time", "vcs.modified":
			fmt.Fprintf(&b, "%s: %s\n", strings.TrimPrefix(s.Key, "vcs."), s.Value)
		}
	}
	fmt.Fprintf(&b, "go: %s %s/%s\n", bi.GoVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}
