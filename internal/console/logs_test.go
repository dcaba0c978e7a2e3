package console

import (
	"net/http"
	"strings"
	"testing"
)

// A component the app does not have ends the stream with an event that
// names the app's workloads, as 'berth logs APP COMPONENT' says.
func TestLogsOfAnUnknownComponentSayWhichThereAre(t *testing.T) {
	f := newFixture(t)
	viewer := newClient(t, f.url)
	viewer.signInOIDC(f.issuer, viewerUser)
	status, body := viewer.get("/apps/" + f.app + "/logs?component=nope")
	if status != http.StatusOK || !strings.Contains(body, "event: failed\n") {
		t.Fatalf("GET logs of an unknown component = %d:\n%s", status, body)
	}
	if !strings.Contains(body, `has no component \"nope\"`) || !strings.Contains(body, "deployment/"+f.app) {
		t.Errorf("the failure does not name the component and the app's workloads:\n%s", body)
	}
	if n := f.srv.logStreams.Load(); n != 0 {
		t.Errorf("%d log streams open after the failed one ended", n)
	}
}
