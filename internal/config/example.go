package config

import (
	"fmt"
	"io"
	"reflect"
	"strings"
)

// WriteExample writes a YAML file with every setting at its default, each with its help text,
// its environment variable and its flag: the output of `herald config example`.
func WriteExample(w io.Writer) {
	fmt.Fprintln(w, "# Herald configuration. Every key is optional; shown are the defaults.")
	fmt.Fprintln(w, "# Precedence: command-line flags > HERALD_* environment > this file > defaults.")
	section := ""
	for _, f := range fields(Default()) {
		sec, key, nested := strings.Cut(f.path, ".")
		indent := ""
		if nested {
			if sec != section {
				fmt.Fprintf(w, "\n%s:\n", sec)
				section = sec
			}
			indent = "  "
		} else {
			key = sec
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s# %s\n%s# env %s, flag --%s\n", indent, f.help, indent, f.env, f.flag)
		fmt.Fprintf(w, "%s%s: %s\n", indent, key, yamlValue(f))
	}
}

func yamlValue(f field) string {
	s := format(f.value)
	if list, ok := f.value.Interface().([]string); ok {
		quoted := make([]string, len(list))
		for i, item := range list {
			quoted[i] = fmt.Sprintf("%q", item)
		}
		return "[" + strings.Join(quoted, ", ") + "]"
	}
	if f.value.Kind() == reflect.String {
		return fmt.Sprintf("%q", s)
	}
	return s
}

// WriteReference writes the Markdown table of every setting: docs/configuration.md is this
// output, and a test keeps the two equal.
func WriteReference(w io.Writer) {
	fmt.Fprintln(w, "| key | flag | environment | default | meaning |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- |")
	for _, f := range fields(Default()) {
		def := f.def
		if def == "" {
			def = "(empty)"
		}
		fmt.Fprintf(w, "| `%s` | `--%s` | `%s` | `%s` | %s |\n", f.path, f.flag, f.env, def, f.help)
	}
}
