package controller

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the controller's Prometheus metrics, served on /metrics with
// controller-runtime's own (work queues, REST client, leader election).
type metrics struct {
	reconcileSeconds   *prometheus.HistogramVec
	objectsApplied     *prometheus.CounterVec
	driftRepairs       *prometheus.CounterVec
	driftRepairSeconds prometheus.Histogram
	gitFetchErrors     *prometheus.CounterVec
	gitFetchSeconds    prometheus.Histogram
	driftQueueDepth    prometheus.Gauge
	appsByState        *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		reconcileSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "berth_reconcile_duration_seconds", Help: "Duration of one reconciliation of a Workspace.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
		}, []string{"workspace", "result"}),
		objectsApplied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_objects_applied_total", Help: "Objects the controller applied, by action (create, update, delete, fail).",
		}, []string{"action"}),
		driftRepairs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_drift_repairs_total", Help: "Objects re-applied after someone deleted or changed them, by result.",
		}, []string{"result"}),
		driftRepairSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "berth_drift_repair_duration_seconds", Help: "Time from noticing a drifted object to having re-applied it.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}),
		gitFetchErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_git_fetch_errors_total", Help: "Failed fetches of a Workspace's branch.",
		}, []string{"workspace"}),
		gitFetchSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "berth_git_fetch_duration_seconds", Help: "Duration of git fetches.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
		}),
		driftQueueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "berth_drift_queue_depth", Help: "Objects waiting for a drift repair.",
		}),
		appsByState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "berth_apps", Help: "Apps of a Workspace by state (ready, stalled, progressing, suspended).",
		}, []string{"workspace", "state"}),
	}
	for _, c := range []prometheus.Collector{m.reconcileSeconds, m.objectsApplied, m.driftRepairs, m.driftRepairSeconds, m.gitFetchErrors, m.gitFetchSeconds, m.driftQueueDepth, m.appsByState} {
		// Only a second controller in one process (tests) finds them
		// registered; its metrics are then not exported, which is harmless.
		_ = reg.Register(c)
	}
	return m
}
