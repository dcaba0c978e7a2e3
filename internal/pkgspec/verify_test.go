package pkgspec

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

func TestVerifyJobIsAFileOfThePackage(t *testing.T) {
	doc := base + "verify: {job: verify/job.yaml}\n"
	fsys := fstest.MapFS{"demo/package.yaml": {Data: []byte(doc)}, "demo/all.yaml": {Data: []byte("{}")}}
	if _, err := Load(fsys, "demo", ""); err == nil || !strings.Contains(err.Error(), `verify.job: "verify/job.yaml" does not exist in the package`) {
		t.Fatalf("Load without the Job file: %v", err)
	}
	fsys["demo/verify/job.yaml"] = &fstest.MapFile{Data: []byte("kind: Job")}
	p, err := Load(fsys, "demo", "")
	if err != nil {
		t.Fatal(err)
	}
	if p.Verify == nil || p.Verify.Job != "verify/job.yaml" || p.Verify.TimeoutDuration() != 5*time.Minute {
		t.Errorf("verify = %+v", p.Verify)
	}
}
