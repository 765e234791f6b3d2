package clients_test

import (
	"testing"
	"testing/fstest"

	"github.com/mqim/mqim/clients"
)

// The embedded files are there, and each is a well-formed fs.FS.
func TestEmbedded(t *testing.T) {
	if err := fstest.TestFS(clients.Web(), "index.html", "app.js", "style.css", "vendor/mqtt.esm.js", "vendor/mqtt-LICENSE.md"); err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(clients.Library(), "index.js", "index.d.ts"); err != nil {
		t.Fatal(err)
	}
}
