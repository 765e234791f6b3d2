// Command mqim is the mqim instant-messaging server. See README.md.
package main

import (
	"os"

	"github.com/mqim/mqim/internal/app"
	"github.com/mqim/mqim/internal/bench"
)

func main() {
	os.Exit(app.Main(os.Args[1:], os.Stdout, os.Stderr, os.Environ(), bench.Command()))
}
