package main

import (
	"github.com/spf13/cobra"
)

func demoCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "demo",
		Short: "Run the whole pipeline on this machine and show what members receive",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return runDemo(g)
		},
	}
}

func runDemo(g *globals) error { return nil }
