package upgrades

import (
	"fmt"
	"slices"

	"berth.dev/berth/internal/placement"
	"berth.dev/berth/internal/workspace"
)

// laterStage returns the environment of cluster when it is a stage after
// the first of a fleet workspace ("" otherwise). Upgrades enter the first
// stage (the build renders a new version for it and for clusters in no
// stage), so only the controllers there land them and watch their health;
// a later stage's controller would see its own app, unchanged, healthy at
// the upgrade's commit and take the upgrade for done.
func laterStage(cfg *workspace.Config, cluster string) (string, error) {
	if cluster == "" || cfg == nil {
		return "", nil
	}
	for i, env := range cfg.Environments {
		members, err := placement.Selected(cfg.Clusters, env.Clusters, env.Selector)
		if err != nil {
			return "", fmt.Errorf("%s: environments[%d] (%s): %w", workspace.ConfigFile, i, env.Name, err)
		}
		if slices.Contains(members, cluster) {
			if i == 0 {
				return "", nil
			}
			return env.Name, nil
		}
	}
	return "", nil
}
