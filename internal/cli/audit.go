package cli

import (
	"context"
	"fmt"
	"time"
)

// auditCmd checks the audit trail of a running Eventmart:
//
//	eventmart audit verify
//
// It exits non-zero when the hash chain is broken, naming the first bad
// record and why.
func auditCmd(ctx context.Context, env *Env, args []string) error {
	fs := newFlagSet(env, "audit")
	clientFlags(fs, env)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] != "verify" {
		return usageError{"audit: want verify"}
	}
	c := newAdminClient(env, 5*time.Minute)
	if err := c.login(ctx, env); err != nil {
		return err
	}
	var r struct {
		Records  int64
		OK       bool
		FirstBad int64
		Reason   string
	}
	if err := c.do(ctx, "GET", "/admin/audit/verify", &r); err != nil {
		return err
	}
	if !r.OK {
		return fmt.Errorf("audit: the chain is broken at record %d of %d: %s", r.FirstBad, r.Records, r.Reason)
	}
	fmt.Fprintf(env.Stdout, "audit trail intact: %d records, hash chain verified\n", r.Records)
	return nil
}
