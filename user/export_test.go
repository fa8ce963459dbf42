package user

import "time"

// ThrottleDelay is the wait after the n-th failure in a row of the
// "account" or "address" rule.
func ThrottleDelay(rule string, n int) time.Duration {
	if rule == "account" {
		return accountRule.delay(n)
	}
	return addressRule.delay(n)
}
