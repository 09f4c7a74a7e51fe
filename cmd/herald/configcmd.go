package main

import (
	"fmt"
	"io"

	"github.com/herald-push/herald/internal/config"
)

// configCmd implements `herald config check FILE` and `herald config example`.
func configCmd(args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: herald config check FILE | herald config example")
	}
	switch args[0] {
	case "example":
		config.WriteExample(stdout)
		return nil
	case "check":
		if len(args) != 2 {
			return fmt.Errorf("usage: herald config check FILE")
		}
		c := config.Default()
		if err := config.LoadFile(c, args[1]); err != nil {
			return err
		}
		if err := c.Validate(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: ok\n", args[1])
		return nil
	}
	return fmt.Errorf("unknown config command %q", args[0])
}
