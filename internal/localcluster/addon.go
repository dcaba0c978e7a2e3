package localcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// An add-on is a process that belongs to a cluster without being part of its
// control plane, such as berth's controller run locally (kwok nodes run no
// containers). It is recorded like the control plane's processes, so that it
// is never confused with another process, and 'berth down' stops it first.

// addonGrace is how long an add-on gets to exit after SIGTERM.
const addonGrace = 5 * time.Second

// StartAddon starts bin with args as the cluster's add-on name, detached, with
// its output in logs/NAME.log, replacing an add-on of that name that runs. It
// returns the pid.
func (c *Cluster) StartAddon(ctx context.Context, name, bin string, args []string) (int, error) {
	if err := ValidateName(name); err != nil || c.isComponent(name) {
		return 0, fmt.Errorf("add-on name %q is invalid or taken by the control plane", name)
	}
	unlock, err := lockFile(ctx, filepath.Join(c.Dir, ".lock"), nil)
	if err != nil {
		return 0, err
	}
	defer unlock()
	if rec, err := readPIDFile(c.pidPath(name)); err == nil {
		if err := stopProcess(ctx, rec, addonGrace); err != nil {
			return 0, fmt.Errorf("stopping the running %s: %w", name, err)
		}
	}
	if err := os.MkdirAll(filepath.Join(c.Dir, "logs"), 0o755); err != nil {
		return 0, err
	}
	rec, err := startDetached(bin, args, c.Dir, c.logPath(name), c.pidPath(name))
	if err != nil {
		return 0, err
	}
	return rec.PID, nil
}

// AddonLog is the log file of an add-on.
func (c *Cluster) AddonLog(name string) string { return c.logPath(name) }

func (c *Cluster) isComponent(name string) bool {
	return slices.ContainsFunc(components(), func(comp component) bool { return comp.name == name })
}

// addons lists the add-ons with a pid file.
func (c *Cluster) addons() []string {
	entries, err := os.ReadDir(filepath.Join(c.Dir, "pids"))
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".pid")
		if ok && !c.isComponent(name) {
			names = append(names, name)
		}
	}
	return names
}

// stopAddons stops every add-on and removes its pid file; it returns those that ran.
func (c *Cluster) stopAddons(ctx context.Context, onErr func(error)) []string {
	var stopped []string
	for _, name := range c.addons() {
		rec, err := readPIDFile(c.pidPath(name))
		if err != nil {
			_ = os.Remove(c.pidPath(name))
			continue
		}
		wasRunning := rec.alive()
		if err := stopProcess(ctx, rec, addonGrace); err != nil {
			if onErr != nil {
				onErr(fmt.Errorf("stopping %s: %w", name, err))
			}
			continue
		}
		_ = os.Remove(c.pidPath(name))
		if wasRunning {
			stopped = append(stopped, name)
		}
	}
	return stopped
}
