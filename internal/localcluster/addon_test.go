package localcluster

import (
	"context"
	"os"
	"testing"
)

func TestAddonsAreReplacedAndStoppedByDown(t *testing.T) {
	ctx := context.Background()
	home := t.TempDir()
	c := newCluster(home, "addons")
	if err := os.MkdirAll(c.Dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := c.StartAddon(ctx, BinAPIServer, "/bin/sh", nil); err == nil {
		t.Error("an add-on took a control plane component's name")
	}
	first, err := c.StartAddon(ctx, "controller", "/bin/sh", []string{"-c", "exec sleep 60"})
	if err != nil {
		t.Fatal(err)
	}
	firstRec, err := readPIDFile(c.pidPath("controller"))
	if err != nil || firstRec.PID != first || !firstRec.alive() {
		t.Fatalf("first add-on: record %+v, err %v", firstRec, err)
	}
	second, err := c.StartAddon(ctx, "controller", "/bin/sh", []string{"-c", "exec sleep 60"})
	if err != nil {
		t.Fatal(err)
	}
	if second == first || firstRec.alive() {
		t.Fatalf("starting the add-on again did not replace it (pids %d, %d)", first, second)
	}
	secondRec, _ := readPIDFile(c.pidPath("controller"))
	res, err := Down(ctx, DownOptions{Home: home, Name: "addons"})
	if err != nil {
		t.Fatal(err)
	}
	if secondRec.alive() {
		t.Error("down left the add-on running")
	}
	if len(res.Stopped) != 1 || res.Stopped[0] != "controller" {
		t.Errorf("down stopped %v, want [controller]", res.Stopped)
	}
	if _, err := os.Stat(c.pidPath("controller")); !os.IsNotExist(err) {
		t.Errorf("the add-on's pid file is left: %v", err)
	}
}
