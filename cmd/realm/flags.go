package main

import (
	"errors"
	"flag"
)

// parseArgs parses a command's flags, which may come before, between or
// after its positional arguments ("--" ends the flags), and returns the
// positional arguments. The flag package has already printed what went
// wrong, so the error is only a status: exitCode(0) after -h, exitCode(2)
// after a bad flag.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, exitCode(0)
			}
			return nil, exitCode(2)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// parseExact is parseArgs for a command that takes exactly n positional
// arguments: another count prints the usage and returns exitCode(2).
func parseExact(fs *flag.FlagSet, args []string, n int) ([]string, error) {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != n {
		fs.Usage()
		return nil, exitCode(2)
	}
	return pos, nil
}
