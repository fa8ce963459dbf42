package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/eventmart/eventmart/webhook"
)

// webhooksCmd manages webhook endpoints through the admin API of a
// running Eventmart:
//
//	eventmart webhooks list
//	eventmart webhooks create URL [--types T,T] [--description D]
//	eventmart webhooks enable|disable|delete|test|rotate ID
//	eventmart webhooks deliveries ID [--status pending|delivered|failed]
//	eventmart webhooks replay ID --delivery DID | --from T --to T
func webhooksCmd(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "webhooks")
	clientFlags(fs, env)
	types := fs.String("types", "", "create: comma-separated event types; empty: every type")
	description := fs.String("description", "", "create: what the endpoint is")
	status := fs.String("status", "", "deliveries: only pending, delivered or failed ones")
	delivery := fs.String("delivery", "", "replay: the delivery (webhook-id) to send again")
	from := fs.String("from", "", "replay: start of the time range (RFC 3339)")
	to := fs.String("to", "", "replay: end of the time range (RFC 3339)")
	overlap := fs.String("overlap", "24h", "rotate: how long the old secret keeps signing")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	usage := usageError{"webhooks: want list | create URL | enable|disable|delete|test|rotate|deliveries|replay ID"}
	if len(pos) == 0 || (pos[0] == "list") != (len(pos) == 1) || len(pos) > 2 {
		return usage
	}
	c := newAdminClient(env, 30*time.Second)
	if err := c.login(ctx, env); err != nil {
		return err
	}
	const base = "/webhooks/endpoints"
	var id string
	if len(pos) == 2 {
		id = pos[1]
	}
	show := func(v any) error {
		b, _ := json.MarshalIndent(v, "", "  ")
		fmt.Fprintln(env.Stdout, string(b))
		return nil
	}
	switch pos[0] {
	case "list":
		var r struct{ Endpoints []webhook.Endpoint }
		if err := c.do(ctx, "GET", base+"?limit=500", &r); err != nil {
			return err
		}
		w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tENABLED\tURL\tEVENT TYPES\tDESCRIPTION")
		for _, ep := range r.Endpoints {
			types := strings.Join(ep.EventTypes, ",")
			if types == "" {
				types = "*"
			}
			enabled := fmt.Sprint(ep.Enabled)
			if !ep.Enabled {
				enabled += " (" + ep.DisabledReason + ")"
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", ep.ID, enabled, ep.URL, types, oneLine(ep.Description, 60))
		}
		return w.Flush()
	case "create":
		ts := []string{}
		for _, t := range strings.Split(*types, ",") {
			if t = strings.TrimSpace(t); t != "" {
				ts = append(ts, t)
			}
		}
		body, _ := json.Marshal(map[string]any{"url": id, "eventTypes": ts, "description": *description})
		var ep webhook.Endpoint
		if err := c.send(ctx, "POST", base, body, &ep); err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "created endpoint %s; its secret is shown only now\n", ep.ID)
		return show(ep)
	case "enable", "disable":
		body, _ := json.Marshal(map[string]bool{"enabled": pos[0] == "enable"})
		var ep webhook.Endpoint
		if err := c.send(ctx, "PATCH", base+"/"+url.PathEscape(id), body, &ep); err != nil {
			return err
		}
		return show(ep)
	case "delete":
		if err := c.do(ctx, "DELETE", base+"/"+url.PathEscape(id), nil); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "deleted endpoint %s\n", id)
		return nil
	case "test":
		var r json.RawMessage
		if err := c.do(ctx, "POST", base+"/"+url.PathEscape(id)+"/test", &r); err != nil {
			return err
		}
		return show(r)
	case "rotate":
		body, _ := json.Marshal(map[string]string{"overlap": *overlap})
		var ep webhook.Endpoint
		if err := c.send(ctx, "POST", base+"/"+url.PathEscape(id)+"/rotate", body, &ep); err != nil {
			return err
		}
		return show(ep)
	case "deliveries":
		q := "?limit=100"
		if *status != "" {
			q += "&status=" + url.QueryEscape(*status)
		}
		var r struct{ Deliveries []webhook.Delivery }
		if err := c.do(ctx, "GET", base+"/"+url.PathEscape(id)+"/deliveries"+q, &r); err != nil {
			return err
		}
		w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "WEBHOOK ID\tEVENT TYPE\tEVENT ID\tSTATUS\tATTEMPTS\tLAST STATUS\tLAST ERROR")
		for _, d := range r.Deliveries {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%d\t%s\n", d.ID, d.EventType, d.EventID, d.Status, d.Attempts, d.LastStatus, oneLine(d.LastError, 80))
		}
		return w.Flush()
	case "replay":
		body, _ := json.Marshal(map[string]string{"deliveryId": *delivery, "from": *from, "to": *to})
		var r struct{ Queued int }
		if err := c.send(ctx, "POST", base+"/"+url.PathEscape(id)+"/replay", body, &r); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "queued: %d deliveries to endpoint %s\n", r.Queued, id)
		return nil
	}
	return usage
}
