package bench

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// row is one line of the comparison table: a label and how to print it from a Result.
type row struct {
	label string
	value func(r *Result) string
	shown func(r *Result) bool // nil: always; else the row is printed when one result has it
}

func f0(v float64) string  { return fmt.Sprintf("%.0f", v) }
func f1(v float64) string  { return fmt.Sprintf("%.1f", v) }
func f2(v float64) string  { return fmt.Sprintf("%.2f", v) }
func kib(v float64) string { return fmt.Sprintf("%.1f KiB", v/1024) }
func mib(v int64) string   { return fmt.Sprintf("%.0f MiB", float64(v)/(1<<20)) }

// loadRow prints the machine's load average around the run: the context of every figure.
var loadRow = row{"machine load (1-min avg) start / end", func(r *Result) string {
	return f1(r.LoadStart) + " / " + f1(r.LoadEnd)
}, nil}

var fanoutRows = []row{
	{"subscribers (slow)", func(r *Result) string { return fmt.Sprintf("%d (%d)", r.N, r.Slow) }, nil},
	{"connect time for N", func(r *Result) string { return f2(r.ConnectSeconds) + " s" }, nil},
	{"published msgs/s", func(r *Result) string { return f0(r.PublishedPerSec) }, nil},
	{"deliveries/s requested", func(r *Result) string { return f0(r.Requested) }, nil},
	{"deliveries/s achieved", func(r *Result) string { return f0(r.Achieved) }, nil},
	{"lost / duplicates", func(r *Result) string { return fmt.Sprintf("%d / %d", r.Lost, r.Duplicates) }, nil},
	{"subscribers dropped early", func(r *Result) string { return fmt.Sprint(r.Dropped) }, nil},
	{"polls refused (503, retried)", func(r *Result) string { return fmt.Sprint(r.Refused) },
		func(r *Result) bool { return r.Transport == "poll" || r.Transport == "mixed" }},
	{"latency p50 / p90 ms", func(r *Result) string { return f1(r.P50) + " / " + f1(r.P90) }, nil},
	{"latency p99 / max ms", func(r *Result) string { return f1(r.P99) + " / " + f1(r.Max) }, nil},
	{"RSS per conn idle", func(r *Result) string { return kib(r.IdlePerConn) }, nil},
	{"RSS per conn under load", func(r *Result) string { return kib(r.LoadPerConn) }, nil},
	{"server RSS base / load", func(r *Result) string { return mib(r.RSSBase) + " / " + mib(r.RSSLoad) }, nil},
	{"CPU s per million deliveries", func(r *Result) string { return f2(r.CPUPerMillion) }, nil},
	{"wire bytes per delivery", func(r *Result) string { return f0(r.BytesPerDelivery) }, nil},
	loadRow,
	{"by transport: p50 / p99 ms, lost", byTransport, func(r *Result) bool { return len(r.ByTransport) > 0 }},
	{"own topic / shared topic: p50 / p99 ms", func(r *Result) string {
		return f1(r.OwnP50) + " / " + f1(r.OwnP99) + " | " + f1(r.SharedP50) + " / " + f1(r.SharedP99)
	}, func(r *Result) bool { return r.SharedP99 > 0 }},
}

// byTransport prints the mixed run's split, e.g. "sse 1.2/40.1 0, ws 1.5/41.0 0, poll ...".
func byTransport(r *Result) string {
	if len(r.ByTransport) == 0 {
		return "-"
	}
	var parts []string
	for _, p := range r.ByTransport {
		parts = append(parts, fmt.Sprintf("%s %s/%s %d", p.Transport, f1(p.P50), f1(p.P99), p.Lost))
	}
	return strings.Join(parts, ", ")
}

var publishRows = []row{
	{"messages per request", func(r *Result) string { return "" }, nil},
	{"accepted msgs/s", func(r *Result) string { return f0(r.PublishedPerSec) }, nil},
	{"errors", func(r *Result) string { return fmt.Sprint(r.PublishErrors) }, nil},
	{"CPU s", func(r *Result) string { return f2(r.CPUSeconds) }, nil},
	loadRow,
}

var churnRows = []row{
	{"connects/s", func(r *Result) string { return f0(r.ChurnPerSec) }, nil},
	{"errors", func(r *Result) string { return fmt.Sprint(r.ConnectErrors) }, nil},
	loadRow,
}

// rowsFor lists the rows to print for results (all of one mode).
func rowsFor(results []*Result) []row {
	var mode string
	for _, r := range results {
		if r != nil {
			mode = r.Mode
		}
	}
	all := fanoutRows
	switch mode {
	case "publish":
		all = publishRows
	case "churn":
		all = churnRows
	}
	var rows []row
	for _, rw := range all {
		if rw.label == "messages per request" {
			continue
		}
		shown := rw.shown == nil
		for _, r := range results {
			shown = shown || r != nil && rw.shown(r)
		}
		if shown {
			rows = append(rows, rw)
		}
	}
	return rows
}

// WriteTable prints results side by side, one column per target.
func WriteTable(w io.Writer, names []string, results []*Result) {
	if len(results) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\t%s\n", strings.Join(names, "\t"))
	for _, rw := range rowsFor(results) {
		cells := make([]string, len(results))
		for i, r := range results {
			cells[i] = "-"
			if r != nil {
				cells[i] = rw.value(r)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\n", rw.label, strings.Join(cells, "\t"))
	}
	tw.Flush()
}

// writeMarkdownTable writes results as a Markdown table, one column per target.
func writeMarkdownTable(w io.Writer, names []string, results []*Result) {
	fmt.Fprintf(w, "| | %s |\n|---|%s\n", strings.Join(names, " | "), strings.Repeat("---|", len(names)))
	for _, rw := range rowsFor(results) {
		cells := make([]string, len(results))
		for i, r := range results {
			cells[i] = "-"
			if r != nil {
				cells[i] = rw.value(r)
			}
		}
		fmt.Fprintf(w, "| %s | %s |\n", rw.label, strings.Join(cells, " | "))
	}
}
