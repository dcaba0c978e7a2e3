// Package fleet manages the clusters of a fleet workspace: recording them in
// berth.yaml with their labels and network ranges, placing apps on them,
// reading the fleet's state from every cluster at once, and promoting a
// revision of an app from one stage of environments to the next.
package fleet
