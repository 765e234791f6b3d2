package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/mqim/mqim/internal/config"
)

// commands lists the subcommands, in the order usage shows them.
var commands = []struct{ name, help string }{
	{"serve", "apply pending migrations, then run the server until SIGINT or SIGTERM (the default)"},
	{"migrate", "apply pending database migrations and exit"},
	{"service-key", "replace the service key: store the new key's hash, print the key once"},
	{"version", "print the version and build information"},
	{"help", "print this help"},
}

// Command is a subcommand that lives outside this package (cmd/mqim passes
// it in, so that a package needing internal/app, like internal/bench, is not
// imported by it). Run gets the arguments after the command name, parses its
// own flags, and returns the exit code; it should stop when ctx is done.
type Command struct {
	Name string
	Help string // one line for `mqim help`
	Run  func(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string) int
}

// Main runs the mqim command line: `mqim [command] [flags]`. It returns the
// process exit code: 0 success, 1 a configuration or start-up error, 2 bad
// usage. serve stops on SIGINT or SIGTERM. extra are commands besides the
// built-in ones, listed in the usage after serve.
func Main(args []string, stdout, stderr io.Writer, environ []string, extra ...Command) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return MainContext(ctx, args, stdout, stderr, environ, extra...)
}

// MainContext is Main where serve (and every extra command) stops when ctx
// is done.
func MainContext(ctx context.Context, args []string, stdout, stderr io.Writer, environ []string, extra ...Command) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	for _, c := range extra {
		if c.Name == cmd {
			return c.Run(ctx, args, stdout, stderr, environ)
		}
	}
	fs := flag.NewFlagSet("mqim "+cmd, flag.ContinueOnError)
	configPath := fs.String("config", "", "YAML configuration file (see configs/mqim.yaml)")
	dataDir := fs.String("data", "", "data folder (SQLite database, generated secrets)")
	httpAddr := fs.String("http", "", "HTTP API listen address, e.g. :8080")
	mqttAddr := fs.String("mqtt", "", "MQTT over TCP listen address, e.g. :1883")
	wsAddr := fs.String("ws", "", "MQTT over WebSocket listen address, e.g. :8083")
	head := func(w io.Writer) {
		fmt.Fprintf(w, "usage: mqim [command] [flags]\n\ncommands:\n")
		for i, c := range commands {
			fmt.Fprintf(w, "  %-12s %s\n", c.name, c.help)
			if i == 0 {
				for _, e := range extra {
					fmt.Fprintf(w, "  %-12s %s (its own flags: mqim %s -h)\n", e.Name, e.Help, e.Name)
				}
			}
		}
		fmt.Fprintf(w, "\nflags (every built-in command takes them; version and help ignore them):\n")
	}
	if code, ok := ParseFlags(fs, args, stdout, stderr, head); !ok {
		return code
	}
	usage := func(w io.Writer) { printUsage(fs, w, head) }
	switch cmd {
	case "help":
		usage(stdout)
		return 0
	case "version":
		fmt.Fprintln(stdout, versionLine(Version, debug.ReadBuildInfo))
		return 0
	case "serve", "migrate", "service-key":
	default:
		fmt.Fprintf(stderr, "mqim: unknown command %q\n", cmd)
		usage(stderr)
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

	switch cmd {
	case "migrate":
		return migrate(ctx, cfg, stdout, stderr)
	case "service-key":
		return rotateServiceKey(cfg, stdout, stderr)
	}

	log := NewLogger(cfg.Log, stderr)
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
	fmt.Fprintf(stdout, "mqim %s listening: http=%s mqtt=%s ws=%s store=%s\n", shortVersion(Version, debug.ReadBuildInfo),
		a.HTTPAddr(), a.Broker.Addr("tcp"), a.Broker.Addr("ws"), cfg.Store.Driver)
	if a.NewServiceKey != "" {
		fmt.Fprintf(stdout, "service key (shown once, only its hash is kept): %s\n", a.NewServiceKey)
	}
	if cfg.HTTP.Demo && a.Broker.Addr("ws") != "" {
		fmt.Fprintf(stdout, "web chat client: http://%s/demo/\n", browsable(a.HTTPAddr()))
	}
	<-ctx.Done()
	log.Info("shutting down")
	if err := a.Close(); err != nil {
		log.Error("shutdown", "error", err)
	}
	return 0
}

// ParseFlags parses a command's flags with fs, whose usage is head
// followed by fs's flag list: -h and --help print it on stdout (exit code
// 0), a bad flag or an extra argument prints it on stderr (exit code 2).
// ok is false when the command should exit with code.
func ParseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer, head func(io.Writer)) (code int, ok bool) {
	fs.SetOutput(stderr)
	fs.Usage = func() {} // printed below, on stdout for -h and on stderr for errors
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(fs, stdout, head)
			return 0, false
		}
		printUsage(fs, stderr, head)
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		printUsage(fs, stderr, head)
		return 2, false
	}
	return 0, true
}

func printUsage(fs *flag.FlagSet, w io.Writer, head func(io.Writer)) {
	head(w)
	out := fs.Output()
	fs.SetOutput(w)
	fs.PrintDefaults()
	fs.SetOutput(out)
}

func migrate(ctx context.Context, cfg config.Config, stdout, stderr io.Writer) int {
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

// rotateServiceKey replaces the stored service key, unless the
// configuration sets one (which would win over the stored hash).
func rotateServiceKey(cfg config.Config, stdout, stderr io.Writer) int {
	if cfg.Auth.ServiceKey != "" {
		fmt.Fprintln(stderr, "mqim: service-key: auth.service_key is set in the configuration (or MQIM_AUTH_SERVICE_KEY); "+
			"that key is the one in force: change it there instead")
		return 1
	}
	key, err := RotateServiceKey(cfg.DataDir)
	if err != nil {
		fmt.Fprintln(stderr, "mqim: service-key:", err)
		return 1
	}
	fmt.Fprintf(stdout, "service key (shown once, only its hash is kept): %s\n", key)
	fmt.Fprintf(stderr, "mqim: stored its hash in %s; a running mqim keeps the old key until it restarts\n",
		strings.TrimSuffix(cfg.DataDir, "/")+"/"+ServiceKeyHashFile)
	return 0
}

// shortVersion is the -ldflags version when set, else the main module's
// version from the build information (a release tag, or the pseudo-version
// go build derives from the VCS), else "dev".
func shortVersion(ldflags string, readBuildInfo func() (*debug.BuildInfo, bool)) string {
	if ldflags != "" && ldflags != "dev" {
		return ldflags
	}
	if bi, ok := readBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// versionLine is `mqim VERSION`, followed by the VCS revision, commit time
// and modified flag and the Go version when the binary carries them:
// `mqim v1.2.0 (revision 0123abcd..., 2025-01-02T03:04:05Z, modified, go1.26.8)`.
func versionLine(ldflags string, readBuildInfo func() (*debug.BuildInfo, bool)) string {
	line := "mqim " + shortVersion(ldflags, readBuildInfo)
	bi, ok := readBuildInfo()
	if !ok {
		return line
	}
	var parts []string
	set := map[string]string{}
	for _, s := range bi.Settings {
		set[s.Key] = s.Value
	}
	if rev := set["vcs.revision"]; rev != "" {
		parts = append(parts, "revision "+rev)
	}
	if t := set["vcs.time"]; t != "" {
		parts = append(parts, t)
	}
	if set["vcs.modified"] == "true" {
		parts = append(parts, "modified")
	}
	if bi.GoVersion != "" {
		parts = append(parts, bi.GoVersion)
	}
	if len(parts) == 0 {
		return line
	}
	return line + " (" + strings.Join(parts, ", ") + ")"
}

// browsable is addr as a browser on this machine reaches it: a wildcard
// host ("[::]:8080", "0.0.0.0:8080") is localhost.
func browsable(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
