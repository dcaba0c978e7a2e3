// Package buildinfo reports which berth this is: the version and commit stamped in
// at link time, and the Go toolchain that built it.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

// Stamped at link time with -ldflags "-X berth.dev/berth/internal/buildinfo.version=...".
var (
	version = "dev"
	commit  = ""
)

// Info describes the running binary.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns the build information of the running binary. When the commit was not
// stamped at link time it falls back to the VCS revision Go recorded, if any.
func Get() Info {
	info := Info{
		Version:   version,
		Commit:    commit,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	if info.Commit == "" {
		info.Commit = "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && s.Value != "" {
					info.Commit = s.Value
				}
			}
		}
	}
	return info
}
