package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// report is one scenario's result against one server.
type report struct {
	target  string // "mqim" or "bare"
	metrics []metric
	lost    int64
	notes   []string
}

// metric is one row of the table. ratio marks the rows that get an
// mqim/bare ratio.
type metric struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	ratio bool
}

func (r *report) add(name string, v float64, unit string, ratio bool) {
	r.metrics = append(r.metrics, metric{Name: name, Value: v, Unit: unit, ratio: ratio})
}

// latencies adds p50, p95, p99 and max of ds (in ms) under name; p50 and
// p99 get a ratio.
func (r *report) latencies(name string, ds []time.Duration) {
	if len(ds) == 0 {
		r.add(name+" (none measured)", 0, "", false)
		return
	}
	slices.Sort(ds)
	pct := func(p float64) float64 {
		i := min(len(ds)-1, int(p*float64(len(ds))))
		return float64(ds[i]) / float64(time.Millisecond)
	}
	r.add(name+" p50", pct(0.50), "ms", true)
	r.add(name+" p95", pct(0.95), "ms", false)
	r.add(name+" p99", pct(0.99), "ms", true)
	r.add(name+" max", pct(1), "ms", false)
}

func format(m metric) string {
	switch m.Unit {
	case "ms":
		return fmt.Sprintf("%.2f ms", m.Value)
	case "s":
		return fmt.Sprintf("%.3f s", m.Value)
	case "MB", "KB":
		return fmt.Sprintf("%.1f %s", m.Value, m.Unit)
	case "x":
		return fmt.Sprintf("%.4f", m.Value)
	case "":
		return fmt.Sprintf("%.0f", m.Value)
	}
	return fmt.Sprintf("%.0f %s", m.Value, m.Unit)
}

// printTable prints one table per scenario: a column per report and, when
// there are two, the ratio of the marked rows (mqim/bare, cluster/single).
// A cluster/single table ends with what the cluster adds per message.
func printTable(w io.Writer, scenario string, reps []*report) {
	fmt.Fprintf(w, "\n== %s ==\n", scenario)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	head := []string{"metric"}
	for _, r := range reps {
		head = append(head, r.target)
	}
	if len(reps) == 2 {
		head = append(head, reps[0].target+"/"+reps[1].target)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
	var names []string
	for _, r := range reps {
		for _, m := range r.metrics {
			if !slices.Contains(names, m.Name) {
				names = append(names, m.Name)
			}
		}
	}
	for _, name := range names {
		row := []string{name}
		var vals []metric
		for _, r := range reps {
			i := slices.IndexFunc(r.metrics, func(m metric) bool { return m.Name == name })
			if i < 0 {
				row = append(row, "-")
				continue
			}
			row = append(row, format(r.metrics[i]))
			vals = append(vals, r.metrics[i])
		}
		if len(reps) == 2 {
			if len(vals) == 2 && vals[0].ratio && vals[1].Value != 0 {
				row = append(row, fmt.Sprintf("%.2f", vals[0].Value/vals[1].Value))
			} else {
				row = append(row, "")
			}
		}
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	tw.Flush()
	if len(reps) == 2 && reps[0].target == "cluster" {
		if d := added(reps[0], reps[1]); d != "" {
			fmt.Fprintf(w, "  cluster - single: %s\n", d)
		}
	}
	for _, r := range reps {
		for _, n := range r.notes {
			fmt.Fprintf(w, "  %s: %s\n", r.target, n)
		}
	}
}

// printJSON prints one JSON object per report.
func printJSON(w io.Writer, scenario string, reps []*report) {
	for _, r := range reps {
		b, _ := json.Marshal(struct {
			Scenario string   `json:"scenario"`
			Target   string   `json:"target"`
			Lost     int64    `json:"lost"`
			Metrics  []metric `json:"metrics"`
			Notes    []string `json:"notes"`
		}{scenario, r.target, r.lost, r.metrics, r.notes})
		fmt.Fprintln(w, string(b))
	}
}

// added is what the cluster c adds to the single node s: latency p50 and
// p99, and the CPU (nodes and NATS) per 1000 of what was carried.
func added(c, s *report) string {
	var out []string
	for _, m := range c.metrics {
		lat := m.Unit == "ms" && (strings.HasSuffix(m.Name, " p50") || strings.HasSuffix(m.Name, " p99"))
		if !lat && !strings.HasPrefix(m.Name, "server+NATS CPU per 1000") {
			continue
		}
		i := slices.IndexFunc(s.metrics, func(o metric) bool { return o.Name == m.Name })
		if i < 0 {
			continue
		}
		d := m.Value - s.metrics[i].Value
		if lat {
			out = append(out, fmt.Sprintf("%s %+.2f ms", m.Name, d))
		} else {
			out = append(out, fmt.Sprintf("%s %+.3f s (%+.1f µs each)", m.Name, d, d*1000))
		}
	}
	return strings.Join(out, ", ")
}
