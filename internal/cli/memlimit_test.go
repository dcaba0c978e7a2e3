package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMemoryLimit(t *testing.T) {
	v2 := t.TempDir()
	if err := os.WriteFile(filepath.Join(v2, "memory.max"), []byte("1073741824\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	unlimited := t.TempDir()
	if err := os.WriteFile(filepath.Join(unlimited, "memory.max"), []byte("max\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	v1 := t.TempDir()
	if err := os.MkdirAll(filepath.Join(v1, "memory"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(v1, "memory", "memory.limit_in_bytes"), []byte("9223372036854771712\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Outside a container: the process's own cgroup, under the root.
	nested := t.TempDir()
	if err := os.MkdirAll(filepath.Join(nested, "system.slice", "berth.service"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(nested, "system.slice", "berth.service", "memory.max"), []byte("2147483648\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	nestedV1 := t.TempDir()
	if err := os.MkdirAll(filepath.Join(nestedV1, "memory", "jobs", "berth"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(nestedV1, "memory", "jobs", "berth", "memory.limit_in_bytes"), []byte("1073741824\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, flag, env, root, self string
		want                        int64
		wantFrom                    string
	}{
		{"auto in a cgroup v2 of its own", "auto", "", nested, "0::/system.slice/berth.service\n", 1932735283, "90% of the container's limit of 2147483648"},
		{"auto in a cgroup v1 of its own", "auto", "", nestedV1, "5:devices:/\n4:memory:/jobs/berth\n0::/\n", 966367641, "90% of the container's limit of 1073741824"},
		{"a size", "900Mi", "", v2, "", 900 << 20, "--memory-limit 900Mi"},
		{"none", "0", "", v2, "", 0, "none"},
		{"auto under a cgroup v2 limit", "auto", "", v2, "", 966367641 /* 90% of 1 GiB */, "90% of the container's limit"},
		{"auto without a limit", "auto", "", unlimited, "", 0, "none"},
		{"auto, cgroup v1 without a limit", "auto", "", v1, "", 0, "none"},
		{"auto, no cgroup at all", "auto", "", t.TempDir(), "", 0, "none"},
		{"GOMEMLIMIT wins", "900Mi", "800MiB", v2, "", 0, "GOMEMLIMIT=800MiB"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, from, err := memoryLimit(tc.flag, tc.env, tc.root, tc.self)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || !strings.HasPrefix(from, tc.wantFrom) {
				t.Errorf("memoryLimit(%q) = %d (%s), want %d (%s...)", tc.flag, got, from, tc.want, tc.wantFrom)
			}
		})
	}
	for _, bad := range []string{"lots", "-1Gi"} {
		if _, _, err := memoryLimit(bad, "", v2, ""); err == nil || !strings.Contains(err.Error(), "--memory-limit") {
			t.Errorf("memoryLimit(%q): %v, want an error naming the flag", bad, err)
		}
	}
}
