package cli

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/user"
	"github.com/eventmart/eventmart/webhook"
)

// eventmart webhooks manages endpoints of a running Eventmart.
func TestWebhooksCommand(t *testing.T) {
	env := map[string]string{"EVENTMART_ADMIN_EMAIL": "admin@example.com", "EVENTMART_ADMIN_PASSWORD": "a long admin passphrase",
		"EVENTMART_WEBHOOK_ALLOW": "127.0.0.1/32"}
	h := apptest.Start(t, []service.Def{user.Def(), webhook.Def()}, apptest.Settings(env))
	env["EVENTMART_TARGET"] = h.Server.URL
	got := make(chan string, 10)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("webhook-id")
		w.WriteHeader(http.StatusNoContent)
	}))
	defer rcv.Close()

	out, err := runCLI(t, env, "webhooks", "create", rcv.URL+"/hooks", "--types", "OrderCreated,OrderShipped", "--description", "ERP")
	if err != nil {
		t.Fatal(err)
	}
	id := regexp.MustCompile(`"id": "([^"]+)"`).FindStringSubmatch(out)
	if id == nil || !strings.Contains(out, `"secret": "whsec_`) {
		t.Fatalf("create printed:\n%s", out)
	}
	if out, err = runCLI(t, env, "webhooks", "list"); err != nil || !containsFields(out, []string{id[1], "true", rcv.URL + "/hooks", "OrderCreated,OrderShipped", "ERP"}) {
		t.Errorf("list: %v\n%s", err, out)
	}
	if out, err = runCLI(t, env, "webhooks", "test", id[1]); err != nil || !strings.Contains(out, `"delivered": true`) {
		t.Errorf("test: %v\n%s", err, out)
	}
	if wid := <-got; !strings.HasPrefix(wid, "msg_test_") {
		t.Errorf("test message webhook-id %q", wid)
	}
	if out, err = runCLI(t, env, "webhooks", "disable", id[1]); err != nil || !strings.Contains(out, `"enabled": false`) {
		t.Errorf("disable: %v\n%s", err, out)
	}
	if out, err = runCLI(t, env, "webhooks", "deliveries", id[1]); err != nil || !strings.Contains(out, "WEBHOOK ID") {
		t.Errorf("deliveries: %v\n%s", err, out)
	}
	if _, err = runCLI(t, env, "webhooks", "create", "http://10.0.0.1/hooks"); err == nil || !strings.Contains(err.Error(), "private address") {
		t.Errorf("create with a private address: %v", err)
	}
	if out, err = runCLI(t, env, "webhooks", "delete", id[1]); err != nil || !strings.Contains(out, "deleted endpoint") {
		t.Errorf("delete: %v\n%s", err, out)
	}
	if _, err = runCLI(t, env, "webhooks", "enable"); err == nil {
		t.Error("enable without an id: no usage error")
	}
}
