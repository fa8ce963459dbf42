package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// replayCmd re-delivers a topic's records to one service's consumer group
// on a running Eventmart:
//
//	eventmart replay SERVICE --topic T [--from-offset N | --from-time RFC3339] [--correlation-id ID] [--key ENTITY] [--reapply]
//
// Handlers are idempotent: a replay applies only what the group missed, and
// running it twice is harmless. Records of events older than the service
// remembers what it applied (EVENTMART_INBOX_RETENTION) are not handed on
// unless --reapply: those it forgot would be applied again.
func replayCmd(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "replay")
	clientFlags(fs, env)
	topic := fs.String("topic", "", "topic to replay (one the service consumes)")
	fromOffset := int64(-1)
	fs.Func("from-offset", "replay every partition from this `offset`; unset: from the log start", func(v string) error {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return errors.New("want an offset, 0 or more")
		}
		fromOffset = n
		return nil
	})
	fromTime := fs.String("from-time", "", "or from this time (RFC 3339)")
	corr := fs.String("correlation-id", "", "only the records of this flow")
	key := fs.String("key", "", "only the records of this entity (record key)")
	reapply := fs.Bool("reapply", false, "hand on the records older than EVENTMART_INBOX_RETENTION too: those the service forgot it applied are applied again")
	rebuild := fs.Bool("rebuild", false, "rebuild the service's read model from scratch into fresh tables and swap them in (no --topic)")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || (*topic == "") == !*rebuild {
		return usageError{"replay: want SERVICE --topic TOPIC [--from-offset N | --from-time T] [--correlation-id ID] [--key K] [--reapply], or SERVICE --rebuild"}
	}
	c := newAdminClient(env, time.Hour)
	if *rebuild {
		if err := c.login(ctx, env); err != nil {
			return err
		}
		return rebuildReadModel(ctx, env, c, pos[0])
	}
	req := map[string]any{"topic": *topic, "correlationId": *corr, "key": *key, "reapply": *reapply}
	if fromOffset >= 0 {
		req["fromOffset"] = fromOffset
	}
	if *fromTime != "" {
		t, err := time.Parse(time.RFC3339, *fromTime)
		if err != nil {
			return usageError{fmt.Sprintf("replay: --from-time %q is not RFC 3339", *fromTime)}
		}
		req["fromTime"] = t
	}
	if err := c.login(ctx, env); err != nil {
		return err
	}
	body, _ := json.Marshal(req)
	fmt.Fprintf(env.Stderr, "replaying %s to %s-service…\n", *topic, pos[0])
	resp, err := c.request(ctx, "POST", "/admin/replay/"+pos[0], body, "application/x-ndjson")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	// One JSON line per progress report, the last with done: true, or an
	// error body if the replay failed midway.
	var line struct {
		Read, Redelivered, FromArchive, BeyondRetention int64
		Partition                                       int32
		Partitions                                      int
		PartitionDone, Done                             bool
		Error                                           *struct{ Code, Message string }
	}
	dec := json.NewDecoder(resp.Body)
	for !line.Done {
		line.Error = nil
		if err := dec.Decode(&line); err != nil {
			return fmt.Errorf("replay: the server ended the replay without a result: %w", err)
		}
		if line.Error != nil {
			return fmt.Errorf("replay: %s: %s (%d records re-delivered before it failed)", line.Error.Code, line.Error.Message, line.Redelivered)
		}
		if !line.Done {
			state := "reading"
			if line.PartitionDone {
				state = "done"
			}
			fmt.Fprintf(env.Stderr, "  partition %d (%d of %d) %s; so far %d read (%d from the archive), %d re-delivered\n",
				line.Partition, line.Partition+1, line.Partitions, state, line.Read, line.FromArchive, line.Redelivered)
		}
	}
	fmt.Fprintf(env.Stdout, "replay of %s to %s-service: %d records read (%d from the audit archive), %d re-delivered (already-processed events were skipped by its handlers)\n",
		*topic, pos[0], line.Read, line.FromArchive, line.Redelivered)
	if line.BeyondRetention > 0 {
		fmt.Fprintf(env.Stdout, "%d records not re-delivered: their events are older than %s-service remembers what it applied (EVENTMART_INBOX_RETENTION); --reapply hands them on, and those it forgot are applied again\n",
			line.BeyondRetention, pos[0])
	}
	return nil
}

// rebuildReadModel runs POST /admin/rebuild/SERVICE, printing its progress.
func rebuildReadModel(ctx context.Context, env *Env, c *adminClient, svc string) error {
	fmt.Fprintf(env.Stderr, "rebuilding the read model of %s-service…\n", svc)
	resp, err := c.request(ctx, "POST", "/admin/rebuild/"+svc, nil, "application/x-ndjson")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var line struct {
		Read, FromArchive int64
		Partition         int32
		Partitions        int
		Done              bool
		Rebuilt           []struct {
			Projection, Table                    string
			Read, FromArchive, Applied, CaughtUp int64
			FromStore                            bool
		}
		Error *struct{ Code, Message string }
	}
	dec := json.NewDecoder(resp.Body)
	for !line.Done {
		line.Error = nil
		if err := dec.Decode(&line); err != nil {
			return fmt.Errorf("rebuild: the server ended the rebuild without a result: %w", err)
		}
		if line.Error != nil {
			return fmt.Errorf("rebuild: %s: %s (the live tables are unchanged)", line.Error.Code, line.Error.Message)
		}
		if !line.Done {
			fmt.Fprintf(env.Stderr, "  partition %d/%d: %d read (%d from the archive)\n", line.Partition+1, line.Partitions, line.Read, line.FromArchive)
		}
	}
	for _, r := range line.Rebuilt {
		if r.FromStore {
			fmt.Fprintf(env.Stdout, "rebuilt %s of %s-service (table %s) from its event store: %d events applied\n", r.Projection, svc, r.Table, r.Applied)
			continue
		}
		fmt.Fprintf(env.Stdout, "rebuilt %s of %s-service (table %s): %d events applied from %d records read (%d from the audit archive); %d that arrived meanwhile applied after the swap\n",
			r.Projection, svc, r.Table, r.Applied, r.Read, r.FromArchive, r.CaughtUp)
	}
	return nil
}
