package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/mqim/mqim/internal/app"
	"github.com/mqim/mqim/internal/testutil"
)

func TestMigrateTwiceIsNoop(t *testing.T) {
	testutil.EachBackend(t, func(t *testing.T, backend string) {
		drv, dsn := testutil.FreshDSN(t, backend)
		env := []string{"MQIM_STORE_DRIVER=" + drv, "MQIM_STORE_DSN=" + dsn}
		run := func() string {
			var out, errb bytes.Buffer
			if code := app.Main([]string{"migrate", "--data", t.TempDir()}, &out, &errb, env); code != 0 {
				t.Fatalf("migrate exit %d: %s", code, errb.String())
			}
			return out.String()
		}
		if first := run(); !strings.Contains(first, "applied ") || !strings.Contains(first, "migration") {
			t.Fatalf("first migrate: %q", first)
		}
		for i := 0; i < 2; i++ {
			if again := run(); !strings.Contains(again, "up to date") {
				t.Fatalf("migrate on an up-to-date store: %q", again)
			}
		}
	})
}

func TestCLI(t *testing.T) {
	var out, errb bytes.Buffer
	if code := app.Main([]string{"version"}, &out, &errb, nil); code != 0 || !strings.HasPrefix(out.String(), "mqim ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	out.Reset()
	if code := app.Main([]string{"frobnicate"}, &out, &errb, nil); code != 2 || !strings.Contains(errb.String(), "unknown command") || !strings.Contains(errb.String(), "usage: mqim") {
		t.Fatalf("unknown command: %d %q", code, errb.String())
	}
	errb.Reset()
	if code := app.Main([]string{"serve", "--http", "nocolon"}, &out, &errb, nil); code != 1 || !strings.Contains(errb.String(), "http.addr") {
		t.Fatalf("bad flag value: %d %q", code, errb.String())
	}
	errb.Reset()
	if code := app.Main([]string{"migrate", "--data", t.TempDir()}, &out, &errb, []string{"MQIM_STORE_DRIVER=postgres"}); code != 1 || !strings.Contains(errb.String(), "store.driver") {
		t.Fatalf("bad env: %d %q", code, errb.String())
	}
}

// help, -h and --help print the usage on stdout and succeed; extra
// arguments are refused with the usage.
func TestCLIUsage(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}, {"serve", "-h"}, {"service-key", "--help"}} {
		var out, errb bytes.Buffer
		code := app.Main(args, &out, &errb, nil)
		if code != 0 || !strings.HasPrefix(out.String(), "usage: mqim") || errb.Len() != 0 {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q", args, code, out.String(), errb.String())
		}
		for _, want := range []string{"serve", "migrate", "service-key", "version", "-data", "-mqtt"} {
			if !strings.Contains(out.String(), want) {
				t.Fatalf("%v: usage lacks %q: %s", args, want, out.String())
			}
		}
	}
	for _, args := range [][]string{{"serve", "extra"}, {"extra"}, {"migrate", "--data", t.TempDir(), "x"}, {"version", "x"}, {"service-key", "x"}, {"help", "x"}} {
		var out, errb bytes.Buffer
		code := app.Main(args, &out, &errb, nil)
		if code != 2 || !strings.Contains(errb.String(), "usage: mqim") || out.Len() != 0 {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q", args, code, out.String(), errb.String())
		}
	}
	var out, errb bytes.Buffer
	if code := app.Main([]string{"serve", "--nope"}, &out, &errb, nil); code != 2 || !strings.Contains(errb.String(), "nope") {
		t.Fatalf("unknown flag: exit %d, stderr %q", code, errb.String())
	}
}

// A command passed in by main runs with the arguments after its name, and
// the usage lists it.
func TestCLIExtraCommand(t *testing.T) {
	var got []string
	extra := app.Command{Name: "frob", Help: "frobnicate the server", Run: func(_ context.Context, args []string, stdout, _ io.Writer, _ []string) int {
		got = args
		fmt.Fprint(stdout, "frobbed")
		return 3
	}}
	var out, errb bytes.Buffer
	if code := app.Main([]string{"frob", "--x", "y"}, &out, &errb, nil, extra); code != 3 || out.String() != "frobbed" ||
		strings.Join(got, " ") != "--x y" {
		t.Fatalf("frob: exit %d, out %q, args %q", code, out.String(), got)
	}
	out.Reset()
	if code := app.Main([]string{"help"}, &out, &errb, nil, extra); code != 0 || !strings.Contains(out.String(), "frobnicate the server") {
		t.Fatalf("help: exit %d, %q", code, out.String())
	}
}
