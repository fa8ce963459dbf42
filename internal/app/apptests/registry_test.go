package apptests

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/eventmart/eventmart/catalog"
	"github.com/eventmart/eventmart/internal/app"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/registry"
	"github.com/eventmart/eventmart/internal/service"
)

// The built-in registry is served at /registry by the gateway: anyone
// reads, only admins write or check compatibility (401 anonymous, 403
// customers), through the same sr client as Apicurio.
func TestBuiltInRegistryOnTheGateway(t *testing.T) {
	dir := t.TempDir()
	h := apptest.Start(t, []service.Def{catalog.Def()}, func(c *app.Config) { c.RegistryDir = dir })
	ctx := context.Background()
	url := h.Server.URL + "/registry"
	entries, err := registry.Catalog()
	if err != nil {
		t.Fatal(err)
	}
	for _, who := range []struct {
		name, token string
		status      int
	}{{"anonymous", "", http.StatusUnauthorized}, {"customer", h.Token("c1", "customer"), http.StatusForbidden}} {
		cl, _ := registry.NewClient(url, who.token, nil)
		_, err := registry.Register(ctx, cl, entries[:1], "")
		var re *sr.ResponseError
		if !errors.As(err, &re) || re.StatusCode != who.status {
			t.Errorf("%s registers: %v, want HTTP %d", who.name, err, who.status)
		}
	}
	adminCl, _ := registry.NewClient(url, h.Token("a1", "admin"), nil)
	res, err := registry.Register(ctx, adminCl, entries, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil || r.Version != 1 {
			t.Errorf("%s: %+v", r.Entry.Subject, r)
		}
	}
	public, _ := registry.NewClient(url, "", nil)
	subjects, err := public.Subjects(ctx)
	if err != nil || len(subjects) != len(entries) {
		t.Errorf("anonymous read: %d subjects, %v", len(subjects), err)
	}
	var re *sr.ResponseError
	if _, err := registry.CheckRegistry(ctx, public, entries); !errors.As(err, &re) || re.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous compatibility check: %v, want HTTP 401", err)
	}
	findings, err := registry.CheckRegistry(ctx, adminCl, entries)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range findings {
		if !f.OK() {
			t.Errorf("%+v", f)
		}
	}
	// What the gateway stored is the file the CLI reads without a URL.
	st, _ := registry.OpenStore(dir)
	if got, err := st.Subjects(); err != nil || len(got) != len(entries) {
		t.Errorf("store: %d subjects, %v", len(got), err)
	}
	// Registry errors are the Confluent API's JSON.
	status, _, body := h.Do("GET", "/registry/subjects/nope/versions", "", nil)
	if status != http.StatusNotFound || !strings.Contains(string(body), `"error_code":40401`) {
		t.Errorf("unknown subject: %d %s", status, body)
	}
}
