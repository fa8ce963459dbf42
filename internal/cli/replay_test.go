package cli

import (
	"net/http"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/catalog"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/inventory"
	"github.com/eventmart/eventmart/user"
)

// eventmart replay says how many records it did not hand on because they
// are older than the inbox retention, and --reapply hands them on.
func TestReplayCommandAndTheInboxRetention(t *testing.T) {
	env := map[string]string{"EVENTMART_ADMIN_EMAIL": "admin@example.com", "EVENTMART_ADMIN_PASSWORD": "a long admin passphrase",
		"EVENTMART_INBOX_RETENTION": "1ms"} // every event is past it by the time it is replayed
	h := apptest.Start(t, []service.Def{user.Def(), catalog.Def(), inventory.Def()}, apptest.Settings(env))
	env["EVENTMART_TARGET"] = h.Server.URL
	admin := h.Token("admin-1", "admin")
	var p struct{ ID string }
	h.JSON("POST", "/api/v1/products", admin, map[string]any{"sku": "CLI-RPL", "name": "Tea", "priceCents": 300, "currency": "EUR"}, 201, &p)
	h.Eventually("stock set", func() bool {
		status, _, _ := h.Do("PUT", "/api/v1/inventory/"+p.ID, admin, map[string]int{"onHand": 7})
		return status == http.StatusOK
	})
	out, err := runCLI(t, env, "replay", "catalog", "--topic", "inventory-events", "--key", p.ID)
	if err != nil || !strings.Contains(out, ", 0 re-delivered") || !strings.Contains(out, "1 records not re-delivered") || !strings.Contains(out, "--reapply") {
		t.Errorf("replay: %v\n%s", err, out)
	}
	out, err = runCLI(t, env, "replay", "catalog", "--topic", "inventory-events", "--key", p.ID, "--reapply")
	if err != nil || !strings.Contains(out, ", 1 re-delivered") || strings.Contains(out, "not re-delivered") {
		t.Errorf("replay --reapply: %v\n%s", err, out)
	}
}
