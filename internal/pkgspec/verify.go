package pkgspec

import (
	"time"
)

// Verify is a package's verification: a Job that checks that a running
// app works (connects, answers a query), like a smoke test. Promotion runs
// it in every cluster of a stage before the app may move on from there,
// unless the stage (berth.yaml environments[].verify) names a Job of its
// own, which wins.
type Verify struct {
	// Job is a file of the package holding one batch/v1 Job manifest: a Go
	// template over .app (name, namespace), .package (name, version) and
	// .config (the app's configuration, without its secret parameters;
	// read those from the app's Secret). berth sets its namespace.
	Job string `yaml:"job" json:"job"`
	// Timeout is how long the Job may take to complete (a Go duration);
	// 5m when empty.
	Timeout string `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// DefaultVerifyTimeout is how long a verification Job may run when its
// timeout is not set.
const DefaultVerifyTimeout = 5 * time.Minute

// TimeoutDuration is the parsed Timeout, DefaultVerifyTimeout when unset.
func (v Verify) TimeoutDuration() time.Duration {
	if d, err := time.ParseDuration(v.Timeout); err == nil && d > 0 {
		return d
	}
	return DefaultVerifyTimeout
}

func (v *validator) verify() {
	vf := v.p.Verify
	if vf == nil {
		return
	}
	switch {
	case vf.Job == "":
		v.add("verify.job", []any{"verify"}, "name a file of the package holding a Job manifest, e.g. job: verify/job.yaml", "is missing")
	case !localPath(vf.Job):
		v.add("verify.job", []any{"verify", "job"}, "use a relative path inside the package", "%q leaves the package", vf.Job)
	}
	if vf.Timeout != "" {
		if d, err := time.ParseDuration(vf.Timeout); err != nil || d <= 0 {
			v.add("verify.timeout", []any{"verify", "timeout"}, "use a duration such as 2m", "%q is not a positive duration", vf.Timeout)
		}
	}
}
