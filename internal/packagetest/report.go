package packagetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"berth.dev/berth/internal/atomicfile"
	"berth.dev/berth/internal/catalog"
)

// ReportSuffix is appended to a package's directory to name its test report:
// the report of catalog/redis/7.4.2 is catalog/redis/7.4.2.test-report.json.
// It sits beside the package, not in it, so writing it does not change the
// package's digest.
const ReportSuffix = ".test-report.json"

// ReportPath returns where the test report of the package in dir is kept.
func ReportPath(dir string) string { return filepath.Clean(dir) + ReportSuffix }

// Status is the outcome of a step or of a whole test.
type Status string

// Statuses.
const (
	StatusPassed  Status = "passed"
	StatusFailed  Status = "failed"
	StatusSkipped Status = "skipped"
)

func (s Status) String() string { return string(s) }

// StepName names a step of a package test.
type StepName string

// The steps of a package test, in the order they run.
const (
	StepRender StepName = "render"
	// StepDryRun installs into a throwaway workspace with berth install's
	// preflight: a server-side dry run of every object.
	StepDryRun StepName = "dry-run"
	// StepInstall deploys the app and waits until it is healthy.
	StepInstall StepName = "install"
	// StepRedeploy deploys again and expects no write to the cluster.
	StepRedeploy StepName = "redeploy"
	// StepUninstall removes the app with its data and expects nothing of it
	// left in the cluster.
	StepUninstall StepName = "uninstall"
	// StepUpgrade installs the previous version, deploys it, and upgrades it to
	// the tested one (or, across a breaking boundary, checks that berth
	// refuses the upgrade).
	StepUpgrade StepName = "upgrade"
)

func (s StepName) String() string { return string(s) }

// Step is the result of one step.
type Step struct {
	Name   StepName `json:"name"`
	Status Status   `json:"status"`
	// Detail says what the step found: counts, the version upgraded from, why
	// it was skipped.
	Detail string `json:"detail,omitempty"`
	// Error is why the step failed.
	Error string `json:"error,omitempty"`
	// Seconds is how long the step took.
	Seconds float64 `json:"seconds"`
}

// Report is the machine-readable result of a package test.
type Report struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Package    string `json:"package"`
	Version    string `json:"version"`
	// Digest is catalog.TreeDigest of the package's files when tested; a
	// changed package no longer matches its report.
	Digest string `json:"digest"`
	// From is the version the upgrade step started from; empty when there was
	// none.
	From string `json:"from,omitempty"`
	// Berth is the version and commit of the berth that ran the test.
	Berth    string    `json:"berth"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Status   Status    `json:"status"`
	Steps    []Step    `json:"steps"`
}

// ReportKind is the kind of a report file.
const ReportKind = "PackageTestReport"

// Passed reports whether every step passed or was skipped, and none failed.
func (r *Report) Passed() bool { return r.Status == StatusPassed }

// Step returns the step called name.
func (r *Report) Step(name StepName) (Step, bool) {
	for _, s := range r.Steps {
		if s.Name == name {
			return s, true
		}
	}
	return Step{}, false
}

// WriteReport writes r to path atomically.
func WriteReport(path string, r *Report) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, append(b, '\n'), 0o644)
}

// ErrNoReport is a package that has no test report.
var ErrNoReport = errors.New("no test report")

// ReadReport reads the test report of the package in dir.
func ReadReport(dir string) (*Report, error) {
	p := ReportPath(dir)
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", p, ErrNoReport)
	}
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: not a package test report: %v", p, err)
	}
	if r.Kind != ReportKind {
		return nil, fmt.Errorf("%s: kind is %q, expected %s", p, r.Kind, ReportKind)
	}
	return &r, nil
}

// Digest returns the digest of the package in dir as a test report records
// it: the same as the lock of a workspace that installs it.
func Digest(dir string) (string, error) {
	return catalog.TreeDigest(os.DirFS(dir), ".")
}
