// Package incident opens, updates and resolves berth's Incidents: Detect finds
// the causes in an app's pods (pure, like health.Compute), and a Recorder
// turns observed causes into one Incident per cause, counting repetitions,
// keeping a timeline, and resolving them when the app is healthy again.
package incident
