// Package resolve chooses an exact version for every package an installation
// needs: the requested apps, their private components and the shared
// dependencies they have in common. It backtracks when the newest versions
// conflict and explains, in plain words, why no solution exists when none does.
package resolve
