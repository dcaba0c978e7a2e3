package localcluster

// EnsurePrometheusRuleCRD is exported for tests that run the rule sync in-process.
var EnsurePrometheusRuleCRD = EnsurePrometheusRuleCRD
