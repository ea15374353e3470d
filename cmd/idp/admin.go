package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/user"

	"github.com/campusidp/campusidp/internal/config"
	"github.com/campusidp/campusidp/ldapstore"
)

const adminUsage = `usage: idp admin <action> -config FILE [flags] ID

actions:
  reset-code   issue a reset confirmation code for ID, after checking the caller by phone;
               the user types it into their "Initializing One-Time Password Settings" page
`

// cmdAdmin runs helpdesk actions from the command line. Each is audited
// with the acting operator.
func cmdAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, adminUsage)
		return 2
	}
	action := args[0]
	fs := flag.NewFlagSet("admin "+action, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "/etc/idp/config.yaml", "config file")
	actor := fs.String("actor", "", "who performs the action (default: the operating-system user)")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() != 1 {
		fmt.Fprint(stderr, adminUsage)
		return 2
	}
	id := fs.Arg(0)
	if *actor == "" {
		*actor = "cli"
		if u, err := user.Current(); err == nil {
			*actor = "cli:" + u.Username
		}
	}
	cfg, err := config.Load(*path)
	if err != nil {
		printConfigErrors(stderr, *path, err)
		return 1
	}
	logger := newLogger(cfg.Log, stderr)
	in, err := build(ctx, &cfg, logger, nil)
	if err != nil {
		fmt.Fprintf(stderr, "idp admin: %v\n", err)
		return 1
	}
	defer in.Close()

	switch action {
	case "reset-code":
		code, err := in.app.IssueResetCode(ctx, *actor, id)
		switch {
		case errors.Is(err, ldapstore.ErrUserNotFound):
			fmt.Fprintf(stderr, "idp admin: no account %q in the directory\n", id)
			return 1
		case err != nil:
			fmt.Fprintf(stderr, "idp admin: %v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "Reset confirmation code for %s: %s\nValid for %s, only on %s's reset page. Read it out once; it is not shown again.\n",
			id, code, cfg.MFA.Email.ResetCodeLifetime, id)
		return 0
	default:
		fmt.Fprintf(stderr, "idp admin: unknown action %q\n\n%s", action, adminUsage)
		return 2
	}
}
