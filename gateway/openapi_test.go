package gateway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/eventmart/eventmart/analytics"
	"github.com/eventmart/eventmart/bus"
	"github.com/eventmart/eventmart/cart"
	"github.com/eventmart/eventmart/catalog"
	"github.com/eventmart/eventmart/event"
	"github.com/eventmart/eventmart/event/asyncapi"
	"github.com/eventmart/eventmart/gateway"
	"github.com/eventmart/eventmart/internal/apptest"
	"github.com/eventmart/eventmart/internal/console"
	"github.com/eventmart/eventmart/internal/httpx"
	"github.com/eventmart/eventmart/internal/service"
	"github.com/eventmart/eventmart/inventory"
	"github.com/eventmart/eventmart/notification"
	"github.com/eventmart/eventmart/order"
	"github.com/eventmart/eventmart/payment"
	"github.com/eventmart/eventmart/shipping"
	"github.com/eventmart/eventmart/user"
	"github.com/eventmart/eventmart/webhook"
)

// doc is the decoded OpenAPI document.
type doc = map[string]any

func loadDoc(t *testing.T) doc {
	t.Helper()
	var d doc
	dec := json.NewDecoder(bytes.NewReader(gateway.OpenAPI()))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("openapi.json is not valid JSON: %v", err)
	}
	if dec.More() {
		t.Fatal("openapi.json: trailing data after the document")
	}
	return d
}

// resolve follows a local JSON pointer ("#/components/schemas/User").
func resolve(d doc, ref string) (any, error) {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("%q is not a local reference", ref)
	}
	var cur any = d
	for _, tok := range strings.Split(rest, "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch v := cur.(type) {
		case map[string]any:
			next, ok := v[tok]
			if !ok {
				return nil, fmt.Errorf("%q: no %q", ref, tok)
			}
			cur = next
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(v) {
				return nil, fmt.Errorf("%q: no index %q", ref, tok)
			}
			cur = v[i]
		default:
			return nil, fmt.Errorf("%q: cannot descend into %q", ref, tok)
		}
	}
	return cur, nil
}

// deref returns v, or what its $ref points at.
func deref(t *testing.T, d doc, v any) map[string]any {
	t.Helper()
	m, _ := v.(map[string]any)
	if ref, ok := m["$ref"].(string); ok {
		target, err := resolve(d, ref)
		if err != nil {
			t.Fatal(err)
		}
		m, _ = target.(map[string]any)
	}
	if m == nil {
		t.Fatalf("%v is not an object", v)
	}
	return m
}

// walkRefs calls fn with every $ref in v and where it is.
func walkRefs(v any, at string, fn func(at, ref string)) {
	switch v := v.(type) {
	case map[string]any:
		if ref, ok := v["$ref"].(string); ok {
			fn(at, ref)
		}
		for k, x := range v {
			walkRefs(x, at+"/"+k, fn)
		}
	case []any:
		for i, x := range v {
			walkRefs(x, at+"/"+strconv.Itoa(i), fn)
		}
	}
}

var methods = []string{"get", "put", "post", "delete", "patch", "head", "options", "trace"}

// operation is one documented operation.
type operation struct {
	method, path string
	pathItem, op map[string]any
}

func operations(d doc) []operation {
	var ops []operation
	for path, item := range d["paths"].(map[string]any) {
		pi := item.(map[string]any)
		for _, m := range methods {
			if op, ok := pi[m].(map[string]any); ok {
				ops = append(ops, operation{strings.ToUpper(m), path, pi, op})
			}
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].path+ops[i].method < ops[j].path+ops[j].method })
	return ops
}

// TestOpenAPIDocument checks that the document is OpenAPI 3.1 JSON whose
// every $ref resolves, and the conventions every operation follows.
func TestOpenAPIDocument(t *testing.T) {
	d := loadDoc(t)
	if v, _ := d["openapi"].(string); !regexp.MustCompile(`^3\.1\.\d+$`).MatchString(v) {
		t.Fatalf("openapi = %q, want 3.1.x", v)
	}
	info, _ := d["info"].(map[string]any)
	if info["title"] != "Eventmart" || info["version"] != "1.0.0" {
		t.Errorf("info: title %v, version %v", info["title"], info["version"])
	}
	walkRefs(d, "#", func(at, ref string) {
		if _, err := resolve(d, ref); err != nil {
			t.Errorf("%s: $ref %v", at, err)
		}
	})

	tags := map[string]bool{}
	for _, tg := range d["tags"].([]any) {
		tags[tg.(map[string]any)["name"].(string)] = true
	}
	// Operations whose 201 carries no Location, as their handler sets none.
	noLocation := map[string]bool{"vaultCard": true}
	ids := map[string]string{}
	for _, o := range operations(d) {
		name := o.method + " " + o.path
		id, _ := o.op["operationId"].(string)
		if id == "" {
			t.Errorf("%s: no operationId", name)
		} else if prev, dup := ids[id]; dup {
			t.Errorf("%s: operationId %s is %s's too", name, id, prev)
		}
		ids[id] = name
		if s, _ := o.op["summary"].(string); s == "" {
			t.Errorf("%s: no summary", name)
		}

		// One tag: the owning service, or the gateway for its own routes.
		api := strings.HasPrefix(o.path, "/api/v1/") && o.path != "/api/v1/openapi.json" && o.path != "/api/v1/asyncapi.json"
		want := "gateway"
		if api {
			want = gateway.ServiceOf(o.path)
		}
		if strings.HasPrefix(o.path, "/api/v1/admin/dlq/") || strings.HasPrefix(o.path, "/api/v1/admin/replay/") ||
			strings.HasPrefix(o.path, "/api/v1/admin/rebuild/") || strings.HasPrefix(o.path, "/api/v1/admin/consumers/") {
			want = "admin" // served by whichever service the path names
		}
		if api && want == "" {
			want = "console" // served by the gateway itself (gateway.Console)
		}
		if opTags, _ := o.op["tags"].([]any); len(opTags) != 1 || opTags[0] != want || !tags[want] {
			t.Errorf("%s: tags %v, want [%s] (declared at the top)", name, opTags, want)
		}

		// Path parameters: declared exactly as the template names them.
		params := map[string]map[string]any{}
		for _, list := range []any{o.pathItem["parameters"], o.op["parameters"]} {
			ps, _ := list.([]any)
			for _, p := range ps {
				pm := deref(t, d, p)
				params[pm["in"].(string)+":"+pm["name"].(string)] = pm
			}
		}
		inTemplate := map[string]bool{}
		for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(o.path, -1) {
			inTemplate[m[1]] = true
			if p := params["path:"+m[1]]; p == nil || p["required"] != true {
				t.Errorf("%s: path parameter %s is not declared as required", name, m[1])
			}
		}
		for k := range params {
			if p, ok := strings.CutPrefix(k, "path:"); ok && !inTemplate[p] {
				t.Errorf("%s: path parameter %s is not in the path", name, p)
			}
		}

		responses, _ := o.op["responses"].(map[string]any)
		if len(responses) == 0 {
			t.Errorf("%s: no responses", name)
		}
		for status, r := range responses {
			resp := deref(t, d, r)
			if s, _ := resp["description"].(string); s == "" {
				t.Errorf("%s %s: no description", name, status)
			}
			headers, _ := resp["headers"].(map[string]any)
			if api && headers["X-Correlation-ID"] == nil {
				t.Errorf("%s %s: no X-Correlation-ID header", name, status)
			}
			if (status == "201" || status == "202") && headers["Location"] == nil && !noLocation[id] {
				t.Errorf("%s %s: no Location header", name, status)
			}
			if status >= "400" {
				b, _ := json.Marshal(resp["content"])
				if !strings.Contains(string(b), `"#/components/schemas/Error"`) {
					t.Errorf("%s %s: the body is not an Error", name, status)
				}
			}
		}
		if api {
			if params["header:X-Correlation-ID"] == nil {
				t.Errorf("%s: X-Correlation-ID is not a parameter", name)
			}
			// A bad token is a 401 everywhere; any handler may fail; the
			// gateway answers 503 for a service it cannot reach, 502 or
			// 504 for one that failed after the request was delivered.
			for _, s := range []string{"401", "500", "502", "503", "504"} {
				if responses[s] == nil {
					t.Errorf("%s: no %s response", name, s)
				}
			}
		} else if sec, ok := o.op["security"].([]any); !ok || len(sec) != 0 {
			t.Errorf("%s: served before authentication, so security must be []", name)
		}
	}
	if op := ids["createOrder"]; op != "POST /api/v1/orders" {
		t.Errorf("createOrder is %q", op)
	}
	create := d["paths"].(map[string]any)["/api/v1/orders"].(map[string]any)["post"].(map[string]any)
	if b, _ := json.Marshal(create["parameters"]); !strings.Contains(string(b), "#/components/parameters/IdempotencyKey") {
		t.Error("POST /api/v1/orders does not take Idempotency-Key")
	}
}

var (
	serviceRoute = regexp.MustCompile(`\bmux\.Handle(?:Func)?\(\s*"([A-Z]+) (/api/v1/[^"]*)"`)
	anyRoute     = regexp.MustCompile(`\b(?:mux|root)\.Handle(?:Func)?\(\s*"([^"]*)"`)
	rootRoute    = regexp.MustCompile(`\broot\.Handle(?:Func)?\(\s*"([A-Z]+) (/[^"]*)"`)
	wildcard     = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)(?:\.\.\.)?\}`)
)

// openAPIPath turns a ServeMux pattern's path into an OpenAPI path:
// "{name...}" is "{name}" and "{$}" (exact match) disappears.
func openAPIPath(p string) string {
	return wildcard.ReplaceAllString(strings.ReplaceAll(p, "{$}", ""), "{$1}")
}

// registeredRoutes reads the routes the services register (../*/http.go)
// and those of the gateway's own mux (internal/app/app.go), as
// "METHOD /path" in OpenAPI form.
func registeredRoutes(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("../*/http.go")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../internal/app/http.go") // the dead-letter queue API of every service
	routes := map[string]bool{}
	withRoutes := map[string]bool{}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range anyRoute.FindAllStringSubmatch(string(src), -1) {
			if !serviceRoute.MatchString(`mux.HandleFunc("` + m[1] + `"`) {
				t.Errorf("%s: route %q is not \"METHOD /api/v1/…\": the comparison would miss it", f, m[1])
			}
		}
		for _, m := range serviceRoute.FindAllStringSubmatch(string(src), -1) {
			routes[m[1]+" "+openAPIPath(m[2])] = true
			withRoutes[filepath.Base(filepath.Dir(f))] = true
		}
	}
	// Every service the gateway routes to must have been read.
	for _, svc := range gateway.Routes {
		if !withRoutes[svc] {
			t.Errorf("no routes found in ../%s/http.go, yet the gateway routes to %s", svc, svc)
		}
	}
	src, err := os.ReadFile("../internal/app/app.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range rootRoute.FindAllStringSubmatch(string(src), -1) {
		routes[m[1]+" "+openAPIPath(m[2])] = true
	}
	for _, r := range []string{"GET /healthz", "GET /readyz", "GET /api/v1/openapi.json", "GET /api/v1/asyncapi.json"} {
		if !routes[r] {
			t.Errorf("internal/app/app.go does not register %s", r)
		}
	}
	return routes
}

// TestOpenAPIRoutes checks that the document describes exactly the routes
// that are registered: none missing, none extra.
func TestOpenAPIRoutes(t *testing.T) {
	registered := registeredRoutes(t)
	documented := map[string]bool{}
	for _, o := range operations(loadDoc(t)) {
		documented[o.method+" "+o.path] = true
	}
	var missing, extra []string
	for r := range registered {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for r := range documented {
		if !registered[r] {
			extra = append(extra, r)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	for _, r := range missing {
		t.Errorf("registered but not documented: %s", r)
	}
	for _, r := range extra {
		t.Errorf("documented but not registered: %s", r)
	}
	if len(registered) < 30 {
		t.Errorf("only %d routes found; is the route regexp still right?", len(registered))
	}
}

// jsonFields returns the JSON names of t's exported fields and whether each
// may be left out (omitempty, omitzero).
func jsonFields(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		out[name] = strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
	}
	return out
}

// TestOpenAPISchemasMatchTypes checks that every body schema has exactly
// the JSON fields of the Go type behind it, and that the fields of answers
// are required unless the type may leave them out.
func TestOpenAPISchemasMatchTypes(t *testing.T) {
	d := loadDoc(t)
	schemas := d["components"].(map[string]any)["schemas"].(map[string]any)
	type pair struct {
		v      any
		answer bool // a response body: its required list follows the type
	}
	bodies := map[string]pair{
		"Error":              {httpx.ErrorBody{}, true},
		"User":               {user.User{}, true},
		"RegisterInput":      {user.RegisterInput{}, false},
		"UpdateUserInput":    {user.UpdateInput{}, false},
		"TokenRequest":       {user.TokenRequest{}, false},
		"TokenResponse":      {user.TokenResponse{}, true},
		"Product":            {catalog.Product{}, true},
		"Availability":       {catalog.Availability{}, true},
		"ProductCreateInput": {catalog.ProductInput{}, false},
		"ProductUpdateInput": {catalog.ProductInput{}, false},
		"Stock":              {inventory.Stock{}, true},
		"StockInput":         {inventory.StockInput{}, false},
		"StockMovement":      {inventory.Movement{}, true},
		"Cart":               {cart.Cart{}, true},
		"CartItem":           {event.CartItem{}, true},
		"CartItemInput":      {cart.ItemInput{}, false},
		"Order":              {order.Order{}, true},
		"OrderLine":          {event.OrderLine{}, true},
		"Address":            {event.Address{}, true},
		"Customer":           {order.Customer{}, true},
		"OrderInput":         {order.OrderInput{}, false},
		"LineInput":          {order.LineInput{}, false},
		"PaymentInput":       {order.PaymentInput{}, false},
		"CardInput":          {payment.CardInput{}, false},
		"Card":               {payment.Card{}, true},
		"Payment":            {payment.Payment{}, true},
		"Shipment":           {shipping.Shipment{}, true},
		"Notification":       {notification.Notification{}, true},
		"Envelope":           {event.Envelope{}, true},
		"EventMetadata":      {event.Metadata{}, true},
		"StreamEvent":        {console.StreamEvent{}, true},
		"PartitionOffsets":   {console.PartitionInfo{}, true},
		"PartitionLag":       {bus.PartitionLag{}, true},
		"GroupLag":           {console.GroupLag{}, true},
		"TopicInfo":          {console.TopicInfo{}, true},
		"Consumer":           {console.Consumer{}, true},
		"Publish":            {console.Publish{}, true},
		"Consume":            {console.Consume{}, true},
		"Topology":           {console.Topology{}, true},
		"Saga":               {order.Saga{}, true},
		"WebhookEndpoint":    {webhook.Endpoint{}, true},
		"WebhookDelivery":    {webhook.Delivery{}, true},
		"WebhookAttempt":     {webhook.Attempt{}, true},
	}
	for name, p := range map[string]pair{ // the analytics service's
		"AnalyticsWindows":        {analytics.Windows{}, true},
		"AnalyticsWindow":         {analytics.Window{}, true},
		"AnalyticsCurrencyOrders": {analytics.CurrencyOrders{}, true},
		"AnalyticsMoney":          {analytics.Money{}, true},
		"AnalyticsFunnel":         {analytics.Funnel{}, true},
		"AnalyticsPayments":       {analytics.Payments{}, true},
		"AnalyticsLabelled":       {analytics.Labelled{}, true},
		"AnalyticsDetection":      {analytics.Detection{}, true},
		"AnalyticsRuleSet":        {analytics.RuleSet{}, true},
	} {
		bodies[name] = p
	}
	for name, p := range bodies {
		s, ok := schemas[name].(map[string]any)
		if !ok {
			t.Errorf("no schema %s", name)
			continue
		}
		fields := jsonFields(reflect.TypeOf(p.v))
		props, _ := s["properties"].(map[string]any)
		for f := range fields {
			if props[f] == nil {
				t.Errorf("%s: field %s of %T is not documented", name, f, p.v)
			}
		}
		for f := range props {
			if _, ok := fields[f]; !ok {
				t.Errorf("%s: property %s is not a field of %T", name, f, p.v)
			}
		}
		required := map[string]bool{}
		req, _ := s["required"].([]any)
		for _, r := range req {
			required[r.(string)] = true
			if _, ok := fields[r.(string)]; !ok {
				t.Errorf("%s: required %s is not a field of %T", name, r, p.v)
			}
		}
		if !p.answer {
			continue
		}
		for f, optional := range fields {
			if required[f] == optional {
				t.Errorf("%s: %s is required=%v, but %T marks it optional=%v", name, f, required[f], p.v, optional)
			}
		}
	}
}

// TestOpenAPIServed checks that the gateway serves the document.
func TestOpenAPIServed(t *testing.T) {
	h := apptest.Start(t, []service.Def{catalog.Def()})
	status, hdr, body := h.Do("GET", "/api/v1/openapi.json", "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /api/v1/openapi.json: status %d, body %.200s", status, body)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if !bytes.Equal(body, gateway.OpenAPI()) {
		t.Errorf("GET /api/v1/openapi.json served %d bytes that are not the document (%d bytes)", len(body), len(gateway.OpenAPI()))
	}
}

// TestAsyncAPIServed checks that the gateway serves the events' AsyncAPI
// document, to anyone.
func TestAsyncAPIServed(t *testing.T) {
	h := apptest.Start(t, []service.Def{catalog.Def()})
	status, hdr, body := h.Do("GET", "/api/v1/asyncapi.json", "", nil)
	if status != http.StatusOK {
		t.Fatalf("GET /api/v1/asyncapi.json: status %d, body %.200s", status, body)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if !bytes.Equal(body, asyncapi.Document()) {
		t.Errorf("GET /api/v1/asyncapi.json served %d bytes that are not the document (%d bytes)", len(body), len(asyncapi.Document()))
	}
}
