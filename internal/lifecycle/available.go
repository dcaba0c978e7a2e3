package lifecycle

import (
	"context"

	"berth.dev/berth/internal/workspace"
)

// UpgradeAvailable returns the newest version app's channel (or version
// constraint) allows when it is newer than locked; "" otherwise, never an
// older one. The same rule berth status and berth upgrade follow; the
// upgrades controller asks it for every app.
func (e *Env) UpgradeAvailable(ctx context.Context, app *workspace.App, locked string) (string, error) {
	return e.upgradeAvailable(ctx, app, locked)
}

// Breaking returns the changes that cross a breaking boundary (a new major
// version, or a version its package marks breaking), as Upgrade refuses them.
func (e *Env) Breaking(ctx context.Context, changes []VersionChange) ([]BreakingChange, error) {
	return e.breaking(ctx, changes)
}
