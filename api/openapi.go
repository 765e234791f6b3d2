package api

import (
	_ "embed"
	"net/http"
)

// openapiYAML is this API described in OpenAPI 3 (openapi.yaml). The
// api tests check it against the routes and validate every answer they
// get against it.
//
//go:embed openapi.yaml
var openapiYAML []byte

// OpenAPI returns the OpenAPI 3 document of this API (served at
// GET /v1/openapi.yaml); the caller must not modify it.
func OpenAPI() []byte { return openapiYAML }

// openapi serves the document; it needs no authentication.
func (h *handler) openapi(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(openapiYAML)
}
