package render

import (
	"errors"

	"k8s.io/client-go/discovery"
)

// ServedAPIVersions lists the API versions a cluster serves as charts see
// them in .Capabilities.APIVersions (group/version and
// group/version/Kind, sorted), for recording a cluster's capabilities to
// render with later (AppInput.Discovery) without reaching it.
func ServedAPIVersions(dc discovery.ServerResourcesInterface) ([]string, error) {
	if dc == nil {
		return nil, errors.New("no discovery client")
	}
	return apiVersions(dc)
}
