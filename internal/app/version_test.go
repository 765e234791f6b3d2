package app

import (
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionLine(t *testing.T) {
	info := func(bi *debug.BuildInfo) func() (*debug.BuildInfo, bool) {
		return func() (*debug.BuildInfo, bool) { return bi, bi != nil }
	}
	vcs := []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: "0123abcd"},
		{Key: "vcs.time", Value: "2025-01-02T03:04:05Z"}, {Key: "vcs.modified", Value: "true"}}
	for _, c := range []struct {
		ldflags string
		bi      *debug.BuildInfo
		want    string
	}{
		{"dev", nil, "mqim dev"},
		{"dev", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, "mqim dev (go1.26.8)"},
		{"dev", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"}}, "mqim v1.2.0 (go1.26.8)"},
		{"dev", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20250102030405-0123abcd+dirty"}, Settings: vcs},
			"mqim v0.0.0-20250102030405-0123abcd+dirty (revision 0123abcd, 2025-01-02T03:04:05Z, modified, go1.26.8)"},
		{"v2.0.0", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.0"}, Settings: vcs[:3]},
			"mqim v2.0.0 (revision 0123abcd, 2025-01-02T03:04:05Z, go1.26.8)"},
	} {
		if got := versionLine(c.ldflags, info(c.bi)); got != c.want {
			t.Errorf("versionLine(%q, %+v) = %q, want %q", c.ldflags, c.bi, got, c.want)
		}
	}
}

// A real build: `mqim version` shows what `go version -m` finds in the
// binary (module version, VCS revision and time when the build stamped
// them), and -ldflags -X still overrides the version.
func TestVersionOfBuiltBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool")
	}
	dir := t.TempDir()
	build := func(name string, extra ...string) string {
		bin := filepath.Join(dir, name)
		args := append([]string{"build", "-buildvcs=auto", "-o", bin}, append(extra, "github.com/mqim/mqim/cmd/mqim")...)
		if out, err := exec.Command(gobin, args...).CombinedOutput(); err != nil {
			t.Fatalf("go %v: %v\n%s", args, err, out)
		}
		return bin
	}
	run := func(name string, args ...string) string {
		out, err := exec.Command(name, args...).Output()
		if err != nil {
			t.Fatalf("%s %v: %v", name, args, err)
		}
		return strings.TrimSpace(string(out))
	}

	bin := build("mqim")
	meta := run(gobin, "version", "-m", bin)
	field := func(re string) string {
		if m := regexp.MustCompile(re).FindStringSubmatch(meta); m != nil {
			return m[1]
		}
		return ""
	}
	modVersion := field(`(?m)^\s+mod\s+github\.com/mqim/mqim\s+(\S+)`)
	rev, vtime := field(`(?m)^\s+build\s+vcs\.revision=(\S+)`), field(`(?m)^\s+build\s+vcs\.time=(\S+)`)
	want := "mqim dev"
	if modVersion != "" && modVersion != "(devel)" {
		want = "mqim " + modVersion
	}
	got := run(bin, "version")
	if !strings.HasPrefix(got, want+" (") {
		t.Fatalf("version %q, want it to start with %q (go version -m:\n%s)", got, want, meta)
	}
	if rev != "" && !strings.Contains(got, "revision "+rev+", "+vtime) {
		t.Fatalf("version %q lacks the revision %s and time %s", got, rev, vtime)
	}
	t.Logf("mqim version: %s", got)

	bin = build("mqim-x", "-ldflags", "-X github.com/mqim/mqim/internal/app.Version=v9.8.7-test")
	if got := run(bin, "version"); !strings.HasPrefix(got, "mqim v9.8.7-test (") {
		t.Fatalf("version with -ldflags: %q", got)
	}
}
