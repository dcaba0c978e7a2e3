package cli

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// memoryLimitShare is the part of a container's memory limit given to the
// Go heap as its soft limit: the rest is for the runtime, stacks and what
// the kernel counts that the heap does not.
const memoryLimitShare = 0.9

// memoryLimit decides the controller's soft memory limit (Go's GOMEMLIMIT)
// from --memory-limit: a quantity ("900Mi"), "0" for none, or "auto": 90 %
// of the memory limit of the container it runs in (cgroup v2, else v1),
// none when it has none. GOMEMLIMIT in the environment wins over all of
// them (env is its value): the Go runtime has applied it already. It returns
// the limit in bytes (0: none) and where it came from, for the log.
//
// Without a limit the garbage collector lets the heap grow to twice what is
// live before it collects: a controller holding 10,000 apps peaked at 1,250
// MiB while it read a push (772 MiB resident before), 956 MiB with 900Mi.
func memoryLimit(flag, env, cgroupRoot, selfCgroup string) (int64, string, error) {
	if env != "" {
		return 0, "GOMEMLIMIT=" + env, nil
	}
	switch flag {
	case "", "0", "none":
		return 0, "none", nil
	case "auto":
		limit, file := cgroupMemoryLimit(cgroupRoot, selfCgroup)
		if limit <= 0 {
			return 0, "none (no container memory limit)", nil
		}
		return int64(float64(limit) * memoryLimitShare), fmt.Sprintf("90%% of the container's limit of %d bytes (%s)", limit, file), nil
	}
	q, err := resource.ParseQuantity(flag)
	if err != nil || q.Sign() <= 0 {
		return 0, "", fmt.Errorf("--memory-limit %q: give a size such as 900Mi or 1Gi, 0 for none, or auto (90%% of the container's limit)", flag)
	}
	return q.Value(), "--memory-limit " + flag, nil
}

// cgroupMemoryLimit reads the memory limit of the cgroup the process is in,
// under root (/sys/fs/cgroup): 0 when there is none or it cannot be read.
// In a container root is the container's own cgroup; elsewhere the
// process's cgroup path (self, the text of /proc/self/cgroup: "0::/PATH"
// for v2, "N:memory:/PATH" for v1) is under it.
func cgroupMemoryLimit(root, self string) (int64, string) {
	var files []string
	{
		for _, l := range strings.Split(self, "\n") {
			f := strings.SplitN(l, ":", 3)
			if len(f) != 3 || f[2] == "/" || f[2] == "" {
				continue
			}
			switch {
			case f[0] == "0" && f[1] == "":
				files = append(files, filepath.Join(root, f[2], "memory.max"))
			case slices.Contains(strings.Split(f[1], ","), "memory"):
				files = append(files, filepath.Join(root, "memory", f[2], "memory.limit_in_bytes"))
			}
		}
	}
	files = append(files, filepath.Join(root, "memory.max"), filepath.Join(root, "memory", "memory.limit_in_bytes"))
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0, file
		}
		v, err := strconv.ParseInt(s, 10, 64)
		// cgroup v1 says "no limit" with a number near the largest int64.
		if err != nil || v <= 0 || v >= math.MaxInt64/2 {
			return 0, file
		}
		return v, file
	}
	return 0, ""
}
