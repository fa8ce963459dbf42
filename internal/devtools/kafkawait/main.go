// Command kafkawait blocks until a Kafka broker answers real client requests.
//
// It is the readiness probe used by deploy/scripts/kafka.sh: instead of grepping the
// broker log it connects with franz-go, pings the broker (a broker-only Metadata
// request) and then asks for full cluster metadata, retrying until both succeed or
// the timeout expires.
//
//	go run ./internal/devtools/kafkawait -brokers 127.0.0.1:19092 -timeout 60s
//
// Exit status: 0 ready, 1 timed out / not ready, 2 bad usage, 3 the process named by
// -pid exited while waiting (the broker died during startup).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func main() {
	defBrokers := os.Getenv("EVENTMART_TEST_KAFKA")
	if defBrokers == "" {
		defBrokers = "127.0.0.1:19092"
	}
	brokers := flag.String("brokers", defBrokers, "comma-separated seed brokers (default $EVENTMART_TEST_KAFKA)")
	timeout := flag.Duration("timeout", 60*time.Second, "give up after this long")
	interval := flag.Duration("interval", 200*time.Millisecond, "pause between attempts")
	pid := flag.Int("pid", 0, "if > 0, fail fast when this process (the broker) exits")
	quiet := flag.Bool("q", false, "print nothing on success")
	minBrokers := flag.Int("min-brokers", 1, "wait until at least this many brokers are registered (a cluster)")
	topic := flag.String("topic", "", "wait until this topic exists too (deploy/scripts/mirror.sh: MirrorMaker's checkpoints topic)")
	flag.Parse()

	seeds := splitBrokers(*brokers)
	if len(seeds) == 0 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "kafkawait: need -brokers host:port[,host:port...] and no positional arguments")
		os.Exit(2)
	}

	start := time.Now()
	deadline := start.Add(*timeout)
	var lastErr error
	for attempt := 1; ; attempt++ {
		if *pid > 0 && !processAlive(*pid) {
			fmt.Fprintf(os.Stderr, "kafkawait: process %d exited before %s became ready (last error: %v)\n",
				*pid, strings.Join(seeds, ","), lastErr)
			os.Exit(3)
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			break
		}
		per := min(remaining, 5*time.Second)
		summary, err := probe(seeds, per, *minBrokers, *topic)
		if err == nil {
			if !*quiet {
				fmt.Printf("kafkawait: %s ready after %s (%d attempts): %s\n",
					strings.Join(seeds, ","), time.Since(start).Round(time.Millisecond), attempt, summary)
			}
			return
		}
		lastErr = err
		time.Sleep(min(*interval, max(time.Until(deadline), 0)))
	}
	fmt.Fprintf(os.Stderr, "kafkawait: %s not ready after %s: %v\n", strings.Join(seeds, ","), *timeout, lastErr)
	os.Exit(1)
}

func splitBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

// probe makes one attempt with a fresh client, so that no client-side backoff or
// cached broker state carries over between attempts.
func probe(seeds []string, within time.Duration, minBrokers int, topic string) (string, error) {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(seeds...),
		kgo.ClientID("eventmart-kafkawait"),
		kgo.DialTimeout(min(within, 2*time.Second)),
		kgo.RequestRetries(0),
	)
	if err != nil {
		return "", err
	}
	defer cl.Close()

	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()

	if err := cl.Ping(ctx); err != nil {
		return "", fmt.Errorf("ping: %w", err)
	}

	req := kmsg.NewPtrMetadataRequest() // Topics == nil: all topics
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return "", fmt.Errorf("metadata: %w", err)
	}
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return "", fmt.Errorf("metadata: %w", err)
	}
	if len(resp.Brokers) == 0 {
		return "", errors.New("metadata: no brokers registered yet")
	}
	if len(resp.Brokers) < minBrokers {
		return "", fmt.Errorf("metadata: %d of %d brokers registered", len(resp.Brokers), minBrokers)
	}
	if resp.ControllerID < 0 {
		return "", errors.New("metadata: no controller yet")
	}
	if topic != "" && !hasTopic(resp, topic) {
		return "", fmt.Errorf("metadata: no topic %s yet", topic)
	}
	clusterID := "?"
	if resp.ClusterID != nil {
		clusterID = *resp.ClusterID
	}
	return fmt.Sprintf("cluster %s, %d broker(s), controller %d, %d topic(s)",
		clusterID, len(resp.Brokers), resp.ControllerID, len(resp.Topics)), nil
}

// processAlive reports whether pid exists and is not a zombie. It reads /proc, so it
// only works on Linux; elsewhere it assumes the process is alive.
func processAlive(pid int) bool {
	if _, err := os.Stat("/proc/self"); err != nil {
		return true
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// Format: "pid (comm) S ...": the state follows the last ')'.
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z' && s[i+2] != 'X'
	}
	return true
}

// hasTopic reports whether the metadata lists topic without an error.
func hasTopic(resp *kmsg.MetadataResponse, topic string) bool {
	for _, t := range resp.Topics {
		if t.Topic != nil && *t.Topic == topic && t.ErrorCode == 0 {
			return true
		}
	}
	return false
}
