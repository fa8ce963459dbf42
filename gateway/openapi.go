package gateway

import (
	"bytes"
	_ "embed"
)

//go:embed openapi.json
var openAPI []byte

// OpenAPI returns the OpenAPI 3.1 document of the public HTTP API (every
// service's routes under /api/v1 and the gateway's own), which the gateway
// serves at GET /api/v1/openapi.json. The document is written by hand in
// openapi.json; a test checks that it documents exactly the routes the
// services register. Each call returns a fresh copy.
func OpenAPI() []byte { return bytes.Clone(openAPI) }
