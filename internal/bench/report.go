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
}

func f0(v float64) string  { return fmt.Sprintf("%.0f", v) }
func f1(v float64) string  { return fmt.Sprintf("%.1f", v) }
func f2(v float64) string  { return fmt.Sprintf("%.2f", v) }
func kib(v float64) string { return fmt.Sprintf("%.1f KiB", v/1024) }
func mib(v int64) string   { return fmt.Sprintf("%.0f MiB", float64(v)/(1<<20)) }

var fanoutRows = []row{
	{"subscribers (slow)", func(r *Result) string { return fmt.Sprintf("%d (%d)", r.N, r.Slow) }},
	{"connect time for N", func(r *Result) string { return f2(r.ConnectSeconds) + " s" }},
	{"published msgs/s", func(r *Result) string { return f0(r.PublishedPerSec) }},
	{"deliveries/s requested", func(r *Result) string { return f0(r.Requested) }},
	{"deliveries/s achieved", func(r *Result) string { return f0(r.Achieved) }},
	{"lost / duplicates", func(r *Result) string { return fmt.Sprintf("%d / %d", r.Lost, r.Duplicates) }},
	{"latency p50 / p90 ms", func(r *Result) string { return f1(r.P50) + " / " + f1(r.P90) }},
	{"latency p99 / max ms", func(r *Result) string { return f1(r.P99) + " / " + f1(r.Max) }},
	{"RSS per conn idle", func(r *Result) string { return kib(r.IdlePerConn) }},
	{"RSS per conn under load", func(r *Result) string { return kib(r.LoadPerConn) }},
	{"server RSS base / load", func(r *Result) string { return mib(r.RSSBase) + " / " + mib(r.RSSLoad) }},
	{"CPU s per million deliveries", func(r *Result) string { return f2(r.CPUPerMillion) }},
}

var publishRows = []row{
	{"messages per request", func(r *Result) string { return "" }},
	{"accepted msgs/s", func(r *Result) string { return f0(r.PublishedPerSec) }},
	{"errors", func(r *Result) string { return fmt.Sprint(r.PublishErrors) }},
	{"CPU s", func(r *Result) string { return f2(r.CPUSeconds) }},
}

var churnRows = []row{
	{"connects/s", func(r *Result) string { return f0(r.ChurnPerSec) }},
	{"errors", func(r *Result) string { return fmt.Sprint(r.ConnectErrors) }},
}

func rowsFor(mode string) []row {
	switch mode {
	case "publish":
		return publishRows
	case "churn":
		return churnRows
	}
	return fanoutRows
}

// WriteTable prints results side by side, one column per target.
func WriteTable(w io.Writer, names []string, results []*Result) {
	if len(results) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\t%s\n", strings.Join(names, "\t"))
	for _, rw := range rowsFor(results[0].Mode) {
		if rw.label == "messages per request" {
			continue
		}
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
	for _, rw := range rowsFor(results[0].Mode) {
		if rw.label == "messages per request" {
			continue
		}
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
