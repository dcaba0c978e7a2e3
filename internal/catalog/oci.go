package catalog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"helm.sh/helm/v4/pkg/registry"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"berth.dev/berth/internal/pkgspec"
)

// ociClient bounds every registry request, as defaultClient does for HTTP.
var ociClient = &http.Client{Timeout: 2 * time.Minute}

// pullOCI downloads the archive of chart c and returns it with the reference
// it was pulled from. Credentials are Helm's ('helm registry login', the file
// HELM_REGISTRY_CONFIG names) with Docker's as a fallback. A registry on a
// loopback address is spoken to over plain HTTP, as Docker and Helm users run
// local registries; any other over HTTPS.
func (f *ChartFetcher) pullOCI(ctx context.Context, c pkgspec.Chart) ([]byte, string, error) {
	u, err := url.Parse(c.Repo)
	if err != nil || u.Host == "" {
		return nil, "", fmt.Errorf("%q is not an OCI repository URL such as oci://registry.example.com/charts", c.Repo)
	}
	ref := strings.TrimSuffix(u.Host+u.Path, "/") + "/" + c.Chart + ":" + c.Version
	base := f.Client
	if base == nil {
		base = ociClient
	}
	// Helm's registry client takes no context: the transport adds ours to
	// every request, so a cancelled command stops the pull.
	hc := *base
	hc.Transport = ctxTransport{ctx: ctx, base: base.Transport}
	opts := []registry.ClientOption{registry.ClientOptHTTPClient(&hc), registry.ClientOptWriter(io.Discard)}
	if file := os.Getenv("HELM_REGISTRY_CONFIG"); file != "" {
		opts = append(opts, registry.ClientOptCredentialsFile(file))
	}
	if loopback(u.Hostname()) {
		opts = append(opts, registry.ClientOptPlainHTTP())
	}
	client, err := registry.NewClient(opts...)
	if err != nil {
		return nil, "", fmt.Errorf("OCI registry client: %w", err)
	}
	res, err := client.Generic().PullGeneric(ref, registry.GenericPullOptions{
		AllowedMediaTypes: []string{ocispec.MediaTypeImageManifest, registry.ConfigMediaType, registry.ChartLayerMediaType, registry.LegacyChartLayerMediaType},
		PreCopy: func(_ context.Context, d ocispec.Descriptor) error {
			if d.Size > maxChartBytes {
				return fmt.Errorf("%s: layer %s is larger than %d bytes", ref, d.Digest, maxChartBytes)
			}
			return nil
		},
	})
	if err != nil {
		return nil, ref, ociError(ref, u.Host, c, err)
	}
	for _, d := range res.Descriptors {
		if d.MediaType != registry.ChartLayerMediaType && d.MediaType != registry.LegacyChartLayerMediaType {
			continue
		}
		b, err := client.Generic().GetDescriptorData(res.MemoryStore, d)
		if err != nil {
			return nil, ref, fmt.Errorf("%s: reading the chart layer: %w", ref, err)
		}
		return b, ref, nil
	}
	return nil, ref, fmt.Errorf("%s is not a Helm chart: its manifest has no layer of type %s", ref, registry.ChartLayerMediaType)
}

// ociError says what went wrong with a pull in terms of the package's fields.
func ociError(ref, host string, c pkgspec.Chart, err error) error {
	var resp *errcode.ErrorResponse
	var netErr net.Error
	var opErr *net.OpError
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("pulling %s: %w", ref, err)
	case errors.Is(err, errdef.ErrNotFound),
		errors.As(err, &resp) && resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("the repository %s has no chart %s version %s (%s not found); check the chart and version fields of the package", c.Repo, c.Chart, c.Version, ref)
	case errors.Is(err, auth.ErrBasicCredentialNotFound),
		errors.As(err, &resp) && (resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden):
		return fmt.Errorf("the registry %s refused access to %s (%s): berth uses the credentials of Helm's registry login (the file HELM_REGISTRY_CONFIG names) or Docker's", host, ref, authReason(resp))
	case errors.As(err, &opErr), errors.As(err, &netErr):
		return fmt.Errorf("cannot reach the OCI registry %s for %s: %w; check the repo URL and your network", host, ref, err)
	}
	return fmt.Errorf("pulling %s: %w", ref, err)
}

// loopback reports whether host is this machine.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ctxTransport sends every request with ctx.
type ctxTransport struct {
	ctx  context.Context
	base http.RoundTripper
}

func (t ctxTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	base := t.base
	if base == nil {
		base = http.DefaultTransport
	}
	return base.RoundTrip(r.WithContext(t.ctx))
}

func authReason(resp *errcode.ErrorResponse) string {
	if resp == nil {
		return "it asks for credentials and there are none"
	}
	return http.StatusText(resp.StatusCode)
}
