package render

import chartv2util "helm.sh/helm/v4/pkg/chart/v2/util"

func chartutilCompatible(constraint, version string) bool {
	return chartv2util.IsCompatibleRange(constraint, version)
}
