package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/mqim/mqim/internal/config"
)

// Main runs the mqim command line: `mqim [serve|migrate|version] [flags]`.
// It returns the process exit code.
func Main(args []string, stdout, stderr io.Writer, environ []string) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("mqim "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "YAML configuration file (see configs/mqim.yaml)")
	dataDir := fs.String("data", "", "data folder (SQLite database, generated secrets)")
	httpAddr := fs.String("http", "", "HTTP API listen address, e.g. :8080")
	mqttAddr := fs.String("mqtt", "", "MQTT over TCP listen address, e.g. :1883")
	wsAddr := fs.String("ws", "", "MQTT over WebSocket listen address, e.g. :8083")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: mqim [serve|migrate|version] [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if cmd == "version" {
		fmt.Fprintf(stdout, "mqim %s\n", Version)
		return 0
	}
	if cmd != "serve" && cmd != "migrate" {
		fmt.Fprintf(stderr, "mqim: unknown command %q\n", cmd)
		fs.Usage()
		return 2
	}
	cfg, err := config.Load(*configPath, environ)
	if err != nil {
		fmt.Fprintln(stderr, "mqim:", err)
		return 1
	}
	for _, o := range []struct {
		flag string
		dst  *string
	}{{*dataDir, &cfg.DataDir}, {*httpAddr, &cfg.HTTP.Addr}, {*mqttAddr, &cfg.MQTT.Addr}, {*wsAddr, &cfg.MQTT.WSAddr}} {
		if o.flag != "" {
			*o.dst = o.flag
		}
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintln(stderr, "mqim:", err)
		return 1
	}
	log := NewLogger(cfg.Log, stderr)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if cmd == "migrate" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			fmt.Fprintln(stderr, "mqim:", err)
			return 1
		}
		st, n, err := OpenStore(ctx, cfg)
		if err != nil {
			fmt.Fprintln(stderr, "mqim: migrate:", err)
			return 1
		}
		st.Close()
		if n == 0 {
			fmt.Fprintln(stdout, "mqim: database is up to date")
		} else {
			fmt.Fprintf(stdout, "mqim: applied %d migration(s)\n", n)
		}
		return 0
	}

	a, err := New(ctx, cfg, log)
	if err != nil {
		fmt.Fprintln(stderr, "mqim:", err)
		return 1
	}
	if err := a.Start(); err != nil {
		fmt.Fprintln(stderr, "mqim:", err)
		a.Close()
		return 1
	}
	fmt.Fprintf(stdout, "mqim %s listening: http=%s mqtt=%s ws=%s store=%s\n", Version,
		a.HTTPAddr(), a.Broker.Addr("tcp"), a.Broker.Addr("ws"), cfg.Store.Driver)
	if a.NewServiceKey != "" {
		fmt.Fprintf(stdout, "service key (shown once, only its hash is kept): %s\n", a.NewServiceKey)
	}
	<-ctx.Done()
	log.Info("shutting down")
	if err := a.Close(); err != nil {
		log.Error("shutdown", "error", err)
	}
	return 0
}
