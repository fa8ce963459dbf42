package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/eventmart/eventmart/internal/deadletter"
	"github.com/eventmart/eventmart/internal/settings"
)

// dlqCmd operates a service's dead-letter queue through the admin API of a
// running Eventmart (the gateway routes to the process running it):
//
//	eventmart dlq list SERVICE [--status dead|redriven|discarded]
//	eventmart dlq show SERVICE ID
//	eventmart dlq redrive SERVICE ID|--all
//	eventmart dlq discard SERVICE ID
func dlqCmd(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "dlq")
	clientFlags(fs, env)
	status := fs.String("status", "dead", "list: dead, redriven, discarded, or all")
	all := fs.Bool("all", false, "redrive: every dead letter of the service")
	asJSON := fs.Bool("json", false, "show: print the API's JSON (headers base64-encoded) instead of the decoded letter")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	usage := usageError{"dlq: want list SERVICE | show SERVICE ID | redrive SERVICE ID|--all | discard SERVICE ID"}
	if len(pos) < 2 {
		return usage
	}
	c := newAdminClient(env, 30*time.Second)
	if err := c.login(ctx, env); err != nil {
		return err
	}
	verb, svc := pos[0], pos[1]
	path := "/admin/dlq/" + svc
	switch {
	case verb == "list" && len(pos) == 2:
		q := "?limit=500"
		if *status != "all" {
			q += "&status=" + *status
		}
		var r struct{ DeadLetters []deadletter.DeadLetter }
		if err := c.do(ctx, "GET", path+q, &r); err != nil {
			return err
		}
		w := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "ID\tSTATUS\tEVENT TYPE\tEVENT ID\tTOPIC/PARTITION@OFFSET\tATTEMPTS\tDEAD AT\tERROR")
		for _, d := range r.DeadLetters {
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s/%d@%d\t%d\t%s\t%s\n", d.ID, d.Status, d.EventType, d.EventID, d.Topic, d.Partition, d.Offset,
				d.Attempts, d.DeadAt.Format(time.RFC3339), oneLine(d.Error, 100))
		}
		return w.Flush()
	case verb == "show" && len(pos) == 3:
		var raw json.RawMessage
		if err := c.do(ctx, "GET", path+"/"+pos[2], &raw); err != nil {
			return err
		}
		if *asJSON {
			var out bytes.Buffer
			json.Indent(&out, raw, "", "  ")
			fmt.Fprintln(env.Stdout, out.String())
			return nil
		}
		var d deadletter.DeadLetter
		if err := json.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("dlq show: %w", err)
		}
		writeDeadLetter(env.Stdout, &d)
		return nil
	case verb == "redrive" && (len(pos) == 3) != *all:
		p := path + "/redrive"
		if !*all {
			p = path + "/" + pos[2] + "/redrive"
		}
		var r struct{ Redriven int }
		if err := c.do(ctx, "POST", p, &r); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "redriven: %d dead letter(s) queued for an immediate retry by %s-service\n", r.Redriven, svc)
		return nil
	case verb == "discard" && len(pos) == 3:
		if err := c.do(ctx, "POST", path+"/"+pos[2]+"/discard", nil); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "discarded dead letter %s of %s-service\n", pos[2], svc)
		return nil
	}
	return usage
}

// writeDeadLetter prints d as the console's Dead letters tab shows it:
// headers as text, the value as indented JSON when it is JSON.
func writeDeadLetter(w io.Writer, d *deadletter.DeadLetter) {
	fmt.Fprintf(w, "dead letter %d of %s (%s)\n", d.ID, d.Group, d.Status)
	fmt.Fprintf(w, "record:    %s / partition %d @ offset %d, key %s\n", d.Topic, d.Partition, d.Offset, d.Key)
	if d.EventType != "" {
		fmt.Fprintf(w, "event:     %s %s\n", d.EventType, d.EventID)
	}
	permanent := ""
	if d.Permanent {
		permanent = ", permanent"
	}
	fmt.Fprintf(w, "attempts:  %d%s; first failed %s, dead at %s\n", d.Attempts, permanent, d.FirstFailedAt.Format(time.RFC3339), d.DeadAt.Format(time.RFC3339))
	fmt.Fprintf(w, "error:     %s\n", d.Error)
	fmt.Fprintln(w, "headers:")
	for _, h := range d.Headers {
		fmt.Fprintf(w, "  %s: %s\n", h.Key, headerText(h.Value))
	}
	fmt.Fprintln(w, "value:")
	switch {
	case d.ValueBase64 != "":
		fmt.Fprintf(w, "  (not UTF-8 text; base64) %s\n", d.ValueBase64)
	case json.Valid([]byte(d.Value)):
		var out bytes.Buffer
		json.Indent(&out, []byte(d.Value), "", "  ")
		fmt.Fprintln(w, out.String())
	default:
		fmt.Fprintln(w, d.Value)
	}
}

// headerText is a header value as text, or quoted when it is not printable.
func headerText(v []byte) string {
	if utf8.Valid(v) && !strings.ContainsFunc(string(v), func(r rune) bool { return r < ' ' }) {
		return string(v)
	}
	return strconv.Quote(string(v))
}

func oneLine(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// adminClient calls the admin API with an admin's token.
type adminClient struct {
	target      string // the gateway URL, as the settings name it
	base, token string
	http        *http.Client
}

// clientFlags defines the flags of the commands that call a running
// Eventmart: its URL and the admin account.
func clientFlags(fs *flag.FlagSet, env *Env) {
	for _, s := range []*settings.Setting{settings.Target, settings.AdminEmail, settings.AdminPassword} {
		env.Settings.Flag(fs, s)
	}
}

// newAdminClient returns a client of the admin API at the target the
// settings name, and says which on stderr.
func newAdminClient(env *Env, timeout time.Duration) *adminClient {
	target := strings.TrimRight(env.Settings.String(settings.Target), "/")
	fmt.Fprintln(env.Stderr, "target:", target)
	return &adminClient{target: target, base: target + "/api/v1", http: &http.Client{Timeout: timeout}}
}

// login logs in as the admin account the settings name.
func (c *adminClient) login(ctx context.Context, env *Env) error {
	email, password := env.Settings.String(settings.AdminEmail), env.Settings.String(settings.AdminPassword)
	if email == "" || password == "" {
		return usageError{"set --admin-email and --admin-password (or EVENTMART_ADMIN_EMAIL and EVENTMART_ADMIN_PASSWORD)"}
	}
	body, _ := json.Marshal(map[string]string{"email": email, "password": password})
	var tok struct{ Token string }
	if err := c.send(ctx, "POST", "/auth/token", body, &tok); err != nil {
		return fmt.Errorf("admin login: %w", err)
	}
	c.token = tok.Token
	return nil
}

// unreachable explains a refused connection to target: which URL was
// tried and how to point the command elsewhere.
func unreachable(target string, err error) error {
	if errors.Is(err, syscall.ECONNREFUSED) {
		return fmt.Errorf("no Eventmart answers at %s (connection refused): start one (eventmart run), or point --target or EVENTMART_TARGET at the URL it printed when it started: %w", target, err)
	}
	return err
}

func (c *adminClient) do(ctx context.Context, method, path string, out any) error {
	return c.send(ctx, method, path, nil, out)
}

func (c *adminClient) send(ctx context.Context, method, path string, body []byte, out any) error {
	resp, err := c.request(ctx, method, path, body, "application/json")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
	}
	return nil
}

// request sends a request accepting accept; an error status becomes an
// error carrying the API's code and message. The caller closes the body.
func (c *adminClient) request(ctx context.Context, method, path string, body []byte, accept string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", accept)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, unreachable(c.target, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		var e struct {
			Error struct{ Code, Message string }
		}
		if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
			return nil, fmt.Errorf("%s %s: %s: %s", method, path, e.Error.Code, e.Error.Message)
		}
		return nil, fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	return resp, nil
}
