package webhook

import "net/netip"

// CheckAddr is the guard's verdict on an address with EVENTMART_WEBHOOK_ALLOW
// set to allow, for plain http or https.
func CheckAddr(allow []string, a netip.Addr, plainHTTP bool) error {
	g, err := newGuard(allow)
	if err != nil {
		return err
	}
	return g.check(a, plainHTTP)
}

// Dial runs the guard's dial-time check of address ("ip:port").
func Dial(allow []string, address string) error {
	g, err := newGuard(allow)
	if err != nil {
		return err
	}
	return g.control(false)("tcp4", address, nil)
}
