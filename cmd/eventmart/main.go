// Command eventmart runs Eventmart, an event-driven commerce backend, and
// its operator tools. See the README or `eventmart help`.
package main

import (
	"os"

	"github.com/eventmart/eventmart/internal/cli"
)

func main() {
	os.Exit(cli.Main(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}
