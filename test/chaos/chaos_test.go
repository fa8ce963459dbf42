// Package chaos_test runs Eventmart scaled out (deploy/scripts/cluster.sh: a
// 3-broker Kafka cluster, PostgreSQL, two `eventmart serve` processes of
// every service and the gateway), drives orders through it with `eventmart
// load`, and meanwhile injects faults: SIGKILL of a random service instance
// every few seconds (restarted a moment later; every service at least
// once), SIGKILL of a Kafka broker (restarted later), a restart of
// PostgreSQL, and one outage of the order service longer than the saga
// timeout. Once the faults stop it waits for the system to settle and
// checks that no business effect was lost or doubled, that no paid order
// was cancelled for timeout (a crash must not pass for a stuck saga), and
// that no customer got contradicting e-mails (issue 20).
//
// It runs when EVENTMART_CHAOS is "short" (CI: about a minute of faults) or
// "full" (`make chaos`: three minutes); otherwise it is skipped. It needs
// Java 17 and Maven (for the brokers) and PostgreSQL, like `make test`, and
// picks free ports, so it does not collide with servers already running.
package chaos_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eventmart/eventmart/internal/cli"

	"github.com/eventmart/eventmart/test/clustertest"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/eventmart/eventmart/bus/kafka"
	"github.com/eventmart/eventmart/event"
)

// services are the domain services, from the one list (internal/cli).
var services = cli.ServiceNames()

// consumers are the services with a consumer group ("<name>-service"):
// all but the user service, which consumes nothing.
var consumers = slices.DeleteFunc(cli.ServiceNames(), func(s string) bool { return s == "user" })

type params struct {
	faults      time.Duration // how long faults are injected
	rate        float64       // orders per second
	concurrency int
}

func modeParams(mode string) (params, bool) {
	switch mode {
	case "short":
		return params{faults: 70 * time.Second, rate: 4, concurrency: 16}, true
	case "full":
		return params{faults: 3 * time.Minute, rate: 5, concurrency: 24}, true
	}
	return params{}, false
}

func TestChaos(t *testing.T) {
	mode := os.Getenv("EVENTMART_CHAOS")
	p, ok := modeParams(mode)
	if !ok {
		t.Skip("set EVENTMART_CHAOS=short or full (make chaos) to run the chaos test")
	}
	repo, runDir := clustertest.RunDir(t, "chaos-")
	c := &cluster{t: t, script: filepath.Join(repo, "deploy/scripts/cluster.sh"), env: clusterEnv(t, runDir)}
	t.Logf("chaos run in %s (%s mode)", runDir, mode)
	start := time.Now()
	if out, err := c.sh("start"); err != nil {
		c.sh("stop")
		t.Fatalf("cluster start: %v\n%s", err, out)
	}
	t.Logf("cluster up in %s", time.Since(start).Round(time.Second))
	defer func() {
		if out, err := c.sh("stop"); err != nil {
			t.Errorf("cluster stop: %v\n%s", err, out)
		}
		if !t.Failed() {
			os.RemoveAll(runDir)
		} else {
			t.Logf("logs kept in %s/cluster", runDir)
		}
	}()
	cfg := clustertest.ReadEnv(t, filepath.Join(runDir, "cluster/cluster.env"))
	bin := filepath.Join(runDir, "cluster/bin/eventmart")

	// Load: enough orders to last the faults and some more.
	orders := int(p.rate*p.faults.Seconds()) + int(p.rate*10)
	accepted := filepath.Join(runDir, "accepted.txt")
	loadOut, err := os.Create(filepath.Join(runDir, "load.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer loadOut.Close()
	load := exec.Command(bin, "load", "--target", cfg["EVENTMART_GATEWAY"], "--orders", strconv.Itoa(orders),
		"--rate", fmt.Sprint(p.rate), "--concurrency", strconv.Itoa(p.concurrency), "--decline-ratio", "0.2",
		"--accepted-out", accepted)
	load.Env = append(os.Environ(), "EVENTMART_ADMIN_EMAIL="+cfg["EVENTMART_ADMIN_EMAIL"], "EVENTMART_ADMIN_PASSWORD="+cfg["EVENTMART_ADMIN_PASSWORD"])
	load.Stdout, load.Stderr = loadOut, io.Discard
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	loadDone := make(chan error, 1)
	go func() { loadDone <- load.Wait() }()
	// Faults begin once orders flow (seeding is over).
	clustertest.WaitFor(t, 3*time.Minute, "the first accepted order", func() (bool, string) {
		b, _ := os.ReadFile(accepted)
		return len(b) > 0, "none yet"
	})

	f := &faults{c: c}
	f.inject(p.faults)
	t.Logf("faults injected: %s; kills by service %v", f, f.killed)

	var loadErr error
	select {
	case loadErr = <-loadDone:
		b, _ := os.ReadFile(loadOut.Name())
		t.Logf("eventmart load (%v):\n%s", loadErr, b)
	case <-time.After(6 * time.Minute):
		load.Process.Kill()
		t.Fatal("eventmart load did not finish within 6 minutes after the faults")
	}

	// Everything is back: restarting is idempotent.
	for n := 1; n <= 3; n++ {
		if out, err := c.sh("broker", "start", strconv.Itoa(n)); err != nil {
			t.Fatalf("broker %d: %v\n%s", n, err, out)
		}
	}
	for _, s := range services {
		for i := 1; i <= 2; i++ {
			if out, err := c.sh("instance", "start", s, strconv.Itoa(i)); err != nil {
				t.Fatalf("%s-%d: %v\n%s", s, i, err, out)
			}
		}
	}

	v := newVerifier(t, cfg, accepted, orders)
	defer v.close()
	settleStart := time.Now()
	// Quiet twice in a row: a handler may write its outbox between the
	// outbox check and the lag check of one look.
	quietLooks := 0
	clustertest.WaitFor(t, 5*time.Minute, "quiescence (orders final, parcels delivered, outboxes empty, no consumer lag)", func() (bool, string) {
		ok, why := v.quiescent()
		if !ok {
			quietLooks = 0
			return false, why
		}
		quietLooks++
		return quietLooks >= 2, "quiet once"
	})
	t.Logf("quiescent %s after the faults", time.Since(settleStart).Round(time.Second))
	v.check()
	// The load generator retries what a careful client would (502, 503,
	// 504, a refused connection) with the order's Idempotency-Key: an
	// order it gave up on was refused by a fault as if for good — a 500
	// for a database restarting, say — or lost.
	if loadErr != nil {
		v.violation("eventmart load: %v (its output above)", loadErr)
	}
	fmt.Printf("chaos: %d orders accepted (%d shipped, %d cancelled), faults injected: %s, violations: %d\n",
		len(v.accepted), v.shipped, v.cancelled, f, len(v.violations))
	for _, s := range v.violations {
		t.Error("violation: " + s)
	}
	if len(v.accepted) == 0 {
		t.Error("no order was accepted")
	}
}

// ---- the cluster ---------------------------------------------------------

type cluster struct {
	t      *testing.T
	script string
	env    []string
	mu     sync.Mutex // one script at a time: they share pid files
}

func (c *cluster) sh(args ...string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cmd := exec.Command(c.script, args...)
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// clusterEnv gives the cluster free ports and its own run directory. The
// ports lie below Linux's ephemeral range (32768–60999), so that no
// outgoing connection takes one while an instance is down.
func clusterEnv(t *testing.T, runDir string) []string {
	p := clustertest.FreeRange(t, 51) // 40 for service instances (2 × up to 20 services), 3 brokers, 3 controllers, PostgreSQL, the gateway, 3 broker metrics
	return append(os.Environ(),
		"EVENTMART_RUN="+runDir,
		fmt.Sprintf("CLUSTER_BROKER_PORTS=%d %d %d", p+40, p+41, p+42),
		fmt.Sprintf("CLUSTER_CONTROLLER_PORTS=%d %d %d", p+43, p+44, p+45),
		fmt.Sprintf("CLUSTER_METRICS_PORTS=%d %d %d", p+48, p+49, p+50),
		"CLUSTER_PROMETHEUS=off", // test/monitoring runs Prometheus against a cluster
		fmt.Sprintf("PG_PORT=%d", p+46),
		fmt.Sprintf("CLUSTER_GATEWAY=127.0.0.1:%d", p+47),
		fmt.Sprintf("CLUSTER_SERVICE_PORT=%d", p),
		"CLUSTER_INSTANCES=2",
	)
}

// ---- faults --------------------------------------------------------------

// orderOutage is how long both order instances stay down once: longer than
// the saga timeout the cluster runs with (the default, 30s).
const orderOutage = 35 * time.Second

type faults struct {
	c                                                    *cluster
	instanceKills, brokerKills, pgRestarts, orderOutages atomic.Int32
	killed                                               map[string]int // kills by service
}

func (f *faults) String() string {
	return fmt.Sprintf("%d instance kills, %d broker kills, %d PostgreSQL restarts, %d order service outages",
		f.instanceKills.Load(), f.brokerKills.Load(), f.pgRestarts.Load(), f.orderOutages.Load())
}

// inject kills a service instance every 3–6 s (restarting it 0.5–2 s
// later; the services in a shuffled round, so every one is killed once
// before any twice), kills a broker at 20% of d and restarts it at 60%,
// restarts PostgreSQL at 40% and then kills both order instances for
// orderOutage (while orders flow: the load lasts longer than d). It goes on past d until every service has been killed at
// least once.
func (f *faults) inject(d time.Duration) {
	t := f.c.t
	start := time.Now()
	broker := 1 + rand.IntN(3)
	brokerDown, brokerDone, pgDone, outageDone := false, false, false, false
	f.killed = map[string]int{}
	var round []string // services still to kill in this round
	for time.Since(start) < d || len(f.killed) < len(services) {
		elapsed := time.Since(start)
		switch {
		case !brokerDown && !brokerDone && elapsed > d/5:
			f.must("broker", "kill", strconv.Itoa(broker))
			f.brokerKills.Add(1)
			brokerDown = true
			t.Logf("%s: killed broker %d", elapsed.Round(time.Second), broker)
		case brokerDown && elapsed > d*3/5:
			f.must("broker", "start", strconv.Itoa(broker))
			brokerDown, brokerDone = false, true
			t.Logf("%s: restarted broker %d", elapsed.Round(time.Second), broker)
		case !pgDone && elapsed > d*2/5:
			f.must("postgres", "restart")
			f.pgRestarts.Add(1)
			pgDone = true
			t.Logf("%s: restarted PostgreSQL", elapsed.Round(time.Second))
		case !outageDone && pgDone:
			// The probe's scenario: the order service is down for longer
			// than the saga timeout while payments and labels go on; when
			// it is back, its sweep must not cancel the orders whose
			// events wait unread.
			for _, i := range []string{"1", "2"} {
				f.must("instance", "kill", "order", i)
			}
			time.Sleep(orderOutage) // the fault schedule, not a wait for anything
			for _, i := range []string{"1", "2"} {
				f.must("instance", "start", "order", i)
			}
			f.orderOutages.Add(1)
			outageDone = true
			t.Logf("%s: killed both order instances, restarted them %s later", elapsed.Round(time.Second), orderOutage)
		default:
			if len(round) == 0 {
				round = slices.Clone(services)
				rand.Shuffle(len(round), func(i, j int) { round[i], round[j] = round[j], round[i] })
			}
			s, i := round[0], strconv.Itoa(1+rand.IntN(2))
			round = round[1:]
			f.must("instance", "kill", s, i)
			f.instanceKills.Add(1)
			f.killed[s]++
			time.Sleep(500*time.Millisecond + rand.N(1500*time.Millisecond)) // the fault schedule, not a wait for anything
			f.must("instance", "start", s, i)
			t.Logf("%s: killed and restarted %s-%s", elapsed.Round(time.Second), s, i)
			time.Sleep(2*time.Second + rand.N(2*time.Second))
		}
	}
	if brokerDown {
		f.must("broker", "start", strconv.Itoa(broker))
	}
}

func (f *faults) must(args ...string) {
	if out, err := f.c.sh(args...); err != nil {
		f.c.t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

// ---- checks --------------------------------------------------------------

type verifier struct {
	t          *testing.T
	cfg        map[string]string
	dbs        map[string]*sql.DB
	bus        *kafka.Bus
	accepted   []string
	stock      int64 // what the load generator set every product's stock to
	shipped    int
	cancelled  int
	violations []string
	admin      string // token
}

func newVerifier(t *testing.T, cfg map[string]string, acceptedFile string, orders int) *verifier {
	v := &verifier{t: t, cfg: cfg, dbs: map[string]*sql.DB{}, stock: int64(orders) + 1000}
	b, err := os.ReadFile(acceptedFile)
	if err != nil {
		t.Fatal(err)
	}
	v.accepted = strings.Fields(string(b))
	u, err := url.Parse(cfg["EVENTMART_DB"])
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range services {
		du := *u
		du.Path = "/" + strings.Trim(u.Path, "/") + "_" + s
		db, err := sql.Open("pgx", du.String())
		if err != nil {
			t.Fatal(err)
		}
		v.dbs[s] = db
	}
	brokers, err := kafka.ParseURL(cfg["EVENTMART_BUS"])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if v.bus, err = kafka.Open(ctx, brokers, kafka.Logger(nil)); err != nil {
		t.Fatal(err)
	}
	var tok struct{ Token string }
	if err := v.api("POST", "/api/v1/auth/token", map[string]string{"email": cfg["EVENTMART_ADMIN_EMAIL"], "password": cfg["EVENTMART_ADMIN_PASSWORD"]}, &tok); err != nil {
		t.Fatal(err)
	}
	v.admin = tok.Token
	return v
}

func (v *verifier) close() {
	for _, db := range v.dbs {
		db.Close()
	}
	v.bus.Close()
}

func (v *verifier) violation(format string, args ...any) {
	v.violations = append(v.violations, fmt.Sprintf(format, args...))
}

// api calls the gateway as the admin; a non-2xx answer is an error.
func (v *verifier) api(method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, _ := json.Marshal(in)
		body = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, v.cfg["EVENTMART_GATEWAY"]+path, body)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if v.admin != "" {
		req.Header.Set("Authorization", "Bearer "+v.admin)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s %s", method, path, resp.Status, b)
	}
	return json.Unmarshal(b, out)
}

func (v *verifier) count(svc, q string, args ...any) int64 {
	var n int64
	if err := v.dbs[svc].QueryRow(q, args...).Scan(&n); err != nil {
		v.t.Fatalf("%s: %s: %v", svc, q, err)
	}
	return n
}

// quiescent: every order final, every outbox empty, no delayed retry
// pending, no consumer lag.
func (v *verifier) quiescent() (bool, string) {
	var open int64
	if err := v.dbs["order"].QueryRow(`SELECT COUNT(*) FROM orders WHERE status NOT IN ('SHIPPED', 'CANCELLED')`).Scan(&open); err != nil {
		return false, err.Error()
	}
	if open > 0 {
		return false, fmt.Sprintf("%d orders not final", open)
	}
	var moving int64 // the simulated carrier still has parcels to move
	if err := v.dbs["shipping"].QueryRow(`SELECT COUNT(*) FROM shipments WHERE status IN ('created', 'dispatched')`).Scan(&moving); err != nil {
		return false, err.Error()
	}
	if moving > 0 {
		return false, fmt.Sprintf("%d parcels not delivered yet", moving)
	}
	// The audit's archive copy follows its chain by up to ArchiveDelay
	// twice, or archivePoll for records a killed instance left: until it
	// has caught up, an AuditBlockRecorded is still to come on
	// audit-events, after any outbox and lag look.
	var unarchived int64
	if err := v.dbs["audit"].QueryRow(`SELECT seq - archived_seq FROM chain_head WHERE id = 1`).Scan(&unarchived); err != nil {
		return false, err.Error()
	}
	if unarchived > 0 {
		return false, fmt.Sprintf("audit: %d records not archived yet", unarchived)
	}
	for _, s := range services {
		var n int64
		if err := v.dbs[s].QueryRow(`SELECT COUNT(*) FROM outbox`).Scan(&n); err != nil {
			return false, err.Error()
		}
		if n > 0 {
			return false, fmt.Sprintf("%s: %d outbox rows", s, n)
		}
	}
	lag, err := v.lag()
	if err != nil {
		return false, err.Error()
	}
	if lag != "" {
		return false, lag
	}
	return true, ""
}

// lag describes the consumer lag of every group on the topics it consumes
// (those it committed offsets on); "" when there is none.
func (v *verifier) lag() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var topics []string
	for _, tp := range event.Topics {
		topics = append(topics, string(tp.Name))
	}
	var behind []string
	for _, s := range consumers {
		lags, err := v.bus.Lag(ctx, s+"-service", topics)
		if err != nil {
			return "", err
		}
		consumed := map[string]bool{}
		for _, l := range lags {
			if l.Committed >= 0 {
				consumed[l.Topic] = true
			}
		}
		for _, l := range lags {
			if consumed[l.Topic] && l.Lag > 0 {
				behind = append(behind, fmt.Sprintf("%s-service %s/%d: %d", s, l.Topic, l.Partition, l.Lag))
			}
		}
	}
	if len(behind) > 0 {
		return "lag: " + strings.Join(behind[:min(len(behind), 5)], ", "), nil
	}
	return "", nil
}

func (v *verifier) check() {
	t := v.t
	// Orders: every accepted one is final, through the API and in the database.
	status, reason := map[string]string{}, map[string]string{}
	rows, err := v.dbs["order"].Query(`SELECT id, status, reason_code FROM orders`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id, st, rc string
		rows.Scan(&id, &st, &rc)
		status[id], reason[id] = st, rc
	}
	rows.Close()
	for i, id := range v.accepted {
		st, ok := status[id]
		switch {
		case !ok:
			v.violation("order %s was accepted with 202 but is lost", id)
		case st == "SHIPPED":
			v.shipped++
		case st == "CANCELLED":
			v.cancelled++
		default:
			v.violation("order %s is %s", id, st)
		}
		if i%10 == 0 { // a sample through the public API
			var o struct{ Status string }
			if err := v.api("GET", "/api/v1/orders/"+id, nil, &o); err != nil {
				v.violation("GET order %s: %v", id, err)
			} else if o.Status != st {
				v.violation("order %s: API says %s, database %s", id, o.Status, st)
			}
		}
	}

	// Stock: onHand = available + reserved; what left equals what shipped.
	fulfilled := map[string]int64{}
	rows, err = v.dbs["inventory"].Query(`SELECT lines FROM reservations WHERE status = 'fulfilled'`)
	if err != nil {
		t.Fatal(err)
	}
	units := int64(0)
	for rows.Next() {
		var raw string
		rows.Scan(&raw)
		var lines []struct {
			ProductID string `json:"productId"`
			Quantity  int64  `json:"quantity"`
		}
		if err := json.Unmarshal([]byte(raw), &lines); err != nil {
			t.Fatal(err)
		}
		for _, l := range lines {
			fulfilled[l.ProductID] += l.Quantity
			units += l.Quantity
		}
	}
	rows.Close()
	shippedUnits := int64(0)
	rows, err = v.dbs["order"].Query(`SELECT lines FROM orders WHERE status = 'SHIPPED'`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var raw string
		rows.Scan(&raw)
		var lines []struct{ Quantity int64 }
		json.Unmarshal([]byte(raw), &lines)
		for _, l := range lines {
			shippedUnits += l.Quantity
		}
	}
	rows.Close()
	if units != shippedUnits {
		v.violation("inventory fulfilled %d units, shipped orders hold %d", units, shippedUnits)
	}
	rows, err = v.dbs["inventory"].Query(`SELECT product_id, on_hand, reserved FROM stock`)
	if err != nil {
		t.Fatal(err)
	}
	type stockRow struct {
		id               string
		onHand, reserved int64
	}
	var stock []stockRow
	for rows.Next() {
		var s stockRow
		rows.Scan(&s.id, &s.onHand, &s.reserved)
		stock = append(stock, s)
	}
	rows.Close()
	for _, s := range stock {
		if s.onHand < 0 || s.reserved != 0 {
			v.violation("product %s: on hand %d, reserved %d at rest", s.id, s.onHand, s.reserved)
		}
		if s.onHand+fulfilled[s.id] != v.stock {
			v.violation("product %s: on hand %d + shipped %d != stock %d (sold what was not there, or lost)", s.id, s.onHand, fulfilled[s.id], v.stock)
		}
		var inv struct{ OnHand, Available, Reserved int64 }
		if err := v.api("GET", "/api/v1/inventory/"+s.id, nil, &inv); err != nil {
			v.violation("GET inventory %s: %v", s.id, err)
		} else if inv.OnHand != inv.Available+inv.Reserved || inv.OnHand != s.onHand {
			v.violation("product %s: API onHand %d, available %d, reserved %d (database on hand %d)", s.id, inv.OnHand, inv.Available, inv.Reserved, s.onHand)
		}
	}

	// Payments and shipments, counted in the audit trail (every event once).
	perOrder := map[string]map[string]int{}
	rows, err = v.dbs["audit"].Query(`SELECT record_key, event_type, COUNT(*) FROM audit_log
		WHERE event_type IN ('PaymentProcessed', 'PaymentRefunded', 'ShippingCreated') GROUP BY record_key, event_type`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var key, typ string
		var n int
		rows.Scan(&key, &typ, &n)
		if perOrder[key] == nil {
			perOrder[key] = map[string]int{}
		}
		perOrder[key][typ] = n
	}
	rows.Close()
	for id, st := range status {
		m := perOrder[id]
		charged, refunded, shipments := m["PaymentProcessed"], m["PaymentRefunded"], m["ShippingCreated"]
		switch {
		case charged > 1:
			v.violation("order %s charged %d times", id, charged)
		case st == "SHIPPED" && (charged != 1 || refunded != 0 || shipments != 1):
			v.violation("shipped order %s: %d charges, %d refunds, %d shipments", id, charged, refunded, shipments)
		case st == "CANCELLED" && refunded != charged:
			v.violation("cancelled order %s: %d charges, %d refunds", id, charged, refunded)
		case st == "CANCELLED" && shipments != 0:
			v.violation("cancelled order %s has %d shipments", id, shipments)
		case st == "CANCELLED" && reason[id] == "timeout" && charged > 0:
			// The probe's defect: a crash (the order service's own, or a
			// slow rebalance) passed for a stuck saga, and a paid order
			// was cancelled, refunded and its label voided.
			v.violation("paid order %s was cancelled for timeout", id)
		}
	}
	v.checkNotifications(status)
	byReason := map[string]int{}
	for id, st := range status {
		if st == "CANCELLED" {
			byReason[reason[id]]++
		}
	}
	t.Logf("cancelled orders by reason: %v", byReason)
	// A row per order the shipping service heard of; a parcel for the
	// labelled ones (the carrier moves them on to dispatched, delivered).
	if n := v.count("shipping", `SELECT COUNT(*) FROM shipments WHERE status IN ('created', 'dispatched', 'delivered')`); n != int64(v.countStatus(status, "SHIPPED")) {
		v.violation("%d shipments for %d shipped orders", n, v.countStatus(status, "SHIPPED"))
	}
	if n := v.count("payment", `SELECT COUNT(*) FROM payments WHERE status = 'processed'`); n != int64(v.countStatus(status, "SHIPPED")) {
		v.violation("%d payments processed (not refunded) for %d shipped orders", n, v.countStatus(status, "SHIPPED"))
	}

	// The audit chain verifies and holds every event of the business topics.
	var vr struct {
		Records  int64
		FirstBad int64
		Reason   string
	}
	if err := v.api("GET", "/api/v1/admin/audit/verify", nil, &vr); err != nil {
		v.violation("audit verify: %v", err)
	} else if vr.FirstBad != 0 {
		v.violation("audit chain broken at %d: %s", vr.FirstBad, vr.Reason)
	}
	inAudit := map[string]bool{}
	rows, err = v.dbs["audit"].Query(`SELECT event_id FROM audit_log`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id string
		rows.Scan(&id)
		inAudit[id] = true
	}
	rows.Close()
	published := v.publishedEventIDs()
	missing := 0
	for id := range published {
		if !inAudit[id] {
			missing++
		}
	}
	if missing > 0 {
		v.violation("%d of %d published events are not in the audit trail", missing, len(published))
	}
	if int64(len(inAudit)) != vr.Records {
		v.violation("audit trail has %d events, its chain %d records", len(inAudit), vr.Records)
	}
	if lag, err := v.lag(); err != nil || lag != "" {
		v.violation("consumer lag after quiescence: %s %v", lag, err)
	}
	t.Logf("checked %d orders (%d in the order database), %d products, %d distinct events published, %d audit records",
		len(v.accepted), len(status), len(stock), len(published), vr.Records)
}

// checkNotifications: the customer hears of every final order once, and
// what they hear is true: "on its way" (order-shipped) only for a SHIPPED
// order, "cancelled" only for a CANCELLED one — never both of one order.
func (v *verifier) checkNotifications(status map[string]string) {
	sent := map[string]map[string]int{} // order id -> template -> messages
	rows, err := v.dbs["notification"].Query(`SELECT subject_id, template, COUNT(*) FROM notifications
		WHERE subject_type = 'order' GROUP BY subject_id, template`)
	if err != nil {
		v.t.Fatal(err)
	}
	for rows.Next() {
		var id, tmpl string
		var n int
		rows.Scan(&id, &tmpl, &n)
		if sent[id] == nil {
			sent[id] = map[string]int{}
		}
		sent[id][tmpl] = n
	}
	rows.Close()
	contradicting := 0
	for id, st := range status {
		shipped, cancelled := sent[id]["order-shipped"], sent[id]["order-cancelled"]
		switch {
		case shipped > 0 && cancelled > 0:
			contradicting++
			v.violation("order %s (%s): %d order-shipped and %d order-cancelled e-mails", id, st, shipped, cancelled)
		case st == "SHIPPED" && (shipped != 1 || cancelled != 0):
			v.violation("shipped order %s: %d order-shipped, %d order-cancelled e-mails, want 1 and 0", id, shipped, cancelled)
		case st == "CANCELLED" && (cancelled != 1 || shipped != 0):
			v.violation("cancelled order %s: %d order-cancelled, %d order-shipped e-mails, want 1 and 0", id, cancelled, shipped)
		}
	}
	for id := range sent {
		if _, ok := status[id]; !ok {
			v.violation("e-mails about order %s, which the order service does not know", id)
		}
	}
	v.t.Logf("e-mails of %d orders checked, %d contradicting", len(sent), contradicting)
}

func (v *verifier) countStatus(status map[string]string, want string) int {
	n := 0
	for _, st := range status {
		if st == want {
			n++
		}
	}
	return n
}

// publishedEventIDs reads every business topic from the start.
func (v *verifier) publishedEventIDs() map[string]bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ids := map[string]bool{}
	for _, tp := range event.Topics {
		if tp.Name == event.TopicAudit {
			continue
		}
		offs, err := v.bus.Offsets(ctx, string(tp.Name))
		if err != nil {
			v.t.Fatal(err)
		}
		for _, o := range offs {
			for from := o.Start; from < o.End; {
				msgs, err := v.bus.Read(ctx, string(tp.Name), o.Partition, from, 1000)
				if err != nil {
					v.t.Fatal(err)
				}
				if len(msgs) == 0 {
					break
				}
				for _, m := range msgs {
					var e struct {
						EventID string `json:"eventId"`
					}
					if json.Unmarshal(m.Value, &e) == nil && e.EventID != "" {
						ids[e.EventID] = true
					}
				}
				from = msgs[len(msgs)-1].Offset + 1
			}
		}
	}
	return ids
}
