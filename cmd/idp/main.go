// Command idp is the campus identity provider.
//
//	idp serve -config /etc/idp/config.yaml   run in production
//	idp dev                                  run with embedded demo directory and storage
//	idp check-config -config FILE            report every problem in a config file
//	idp admin <action> -config FILE [ID]     helpdesk and admin actions (reset-code, unlock, ...)
//	idp version                              print the version
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: idp <command> [flags]

commands:
  serve -config FILE         run the identity provider
  dev [-listen ADDR]         run with a demo directory, storage and outbox (no other server needed)
  check-config -config FILE  check a config file and print every problem
  admin <action> -config FILE [ID]
                             helpdesk and admin actions: reset-code, unlock, end-sessions,
                             clear-factors, audit-export ("idp admin" lists them)
  version                    print the version
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return cmdServe(ctx, args[1:], stdout, stderr)
	case "dev":
		return cmdDev(ctx, args[1:], stdout, stderr, nil)
	case "check-config":
		return cmdCheckConfig(args[1:], stdout, stderr)
	case "admin":
		return cmdAdmin(ctx, args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "idp", versionString())
		return 0
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "idp: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}

func versionString() string {
	if version != "" {
		return version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "devel"
}
