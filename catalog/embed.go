// Package catalog holds the packages that ship with berth, embedded in the
// binary as the catalog named builtin so that berth works offline.
package catalog

import "embed"

// FS holds the built-in packages: NAME/channels.yaml and NAME/VERSION/package.yaml
// with the files each package names.
//
//go:embed README.md all:airflow all:cert-manager all:grafana all:postgresql all:redis
//go:embed all:traefik all:kube-prometheus-stack all:loki all:vault all:starter
var FS embed.FS
