// Command gen writes the event schemas (see package schemagen) and the
// AsyncAPI document (package asyncapi). It needs only the event packages,
// so it runs even while the rest of the module does not compile:
// `go generate ./event`.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"github.com/eventmart/eventmart/event/asyncapi"
	"github.com/eventmart/eventmart/event/schemagen"
)

func main() {
	dir := flag.String("dir", "schemas", "directory to write the schemas to")
	doc := flag.String("asyncapi", "", "file to write the AsyncAPI document to (after the schemas)")
	flag.Parse()
	changed, err := schemagen.Write(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	for _, n := range changed {
		fmt.Println("wrote", n)
	}
	if *doc == "" {
		return
	}
	// The AsyncAPI document embeds the schemas as compiled into this
	// binary: run twice after a payload change (go generate does, see
	// event/schema.go).
	b := asyncapi.Document()
	if old, err := os.ReadFile(*doc); err == nil && bytes.Equal(old, b) {
		return
	}
	if err := os.WriteFile(*doc, b, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	fmt.Println("wrote", *doc)
}
