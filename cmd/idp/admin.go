package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"

	"github.com/campusidp/campusidp/config"
	"github.com/campusidp/campusidp/idp"
	"github.com/campusidp/campusidp/ldapstore"
)

const adminUsage = `usage: idp admin <action> -config FILE [flags] [ID]

actions:
  reset-code ID      issue a reset confirmation code for ID, after checking the caller by phone;
                     the user types it into their "Initializing One-Time Password Settings" page
  unlock ID          clear ID's failed-attempt budgets: -budget all (default), password or otp
  end-sessions ID    revoke ID's trusted browsers and end all of ID's sessions (asks for -yes);
                     also spelt revoke-browsers
  clear-factors ID   remove every second factor of ID, revoke trusted browsers, end all sessions
                     and notify the registered address; an admin action (asks for -yes)
  audit-export       write audit events as CSV, newest first, to standard output or -o FILE;
                     filters: -user ID, -by ACTOR, -type TYPE, -since TIME, -until TIME
                     (TIME as 2026-04-01T09:00 local time, 2026-04-01, or RFC 3339)

flags of every action:
  -config FILE       the config file (default /etc/idp/config.yaml)
  -actor NAME        who performs the action, as the audit log records it (default cli:<os user>);
                     when NAME is a directory account, the action must be within its staff role,
                     as in the console: helpdesk for all but clear-factors, which needs admin
`

// adminCommand is one `idp admin` action.
type adminCommand struct {
	need    idp.Role // the role an -actor from the directory must hold
	target  bool     // takes the account ID as its argument
	confirm bool     // destructive: does nothing without -yes
}

var adminCommands = map[string]adminCommand{
	"reset-code":      {need: idp.RoleHelpdesk, target: true},
	"unlock":          {need: idp.RoleHelpdesk, target: true},
	"end-sessions":    {need: idp.RoleHelpdesk, target: true, confirm: true},
	"revoke-browsers": {need: idp.RoleHelpdesk, target: true, confirm: true},
	"clear-factors":   {need: idp.RoleAdmin, target: true, confirm: true},
	"audit-export":    {need: idp.RoleHelpdesk},
}

// cmdAdmin runs helpdesk and admin actions from the command line. Each is
// audited with the acting operator.
func cmdAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, adminUsage)
		return 2
	}
	action := args[0]
	cmd, ok := adminCommands[action]
	if !ok {
		fmt.Fprintf(stderr, "idp admin: unknown action %q\n\n%s", action, adminUsage)
		return 2
	}
	fs := flag.NewFlagSet("admin "+action, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "/etc/idp/config.yaml", "config file")
	actor := fs.String("actor", "", "who performs the action (default: the operating-system user)")
	var yes *bool
	if cmd.confirm {
		yes = fs.Bool("yes", false, "do it (without -yes only say what would be done)")
	}
	var budget *string
	if action == "unlock" {
		budget = fs.String("budget", "all", "which budget: all, password or otp")
	}
	var q struct{ user, by, typ, since, until, out string }
	if action == "audit-export" {
		fs.StringVar(&q.user, "user", "", "only events about this account")
		fs.StringVar(&q.by, "by", "", "only events done by this actor")
		fs.StringVar(&q.typ, "type", "", "only events of this type")
		fs.StringVar(&q.since, "since", "", "only events at or after this time")
		fs.StringVar(&q.until, "until", "", "only events before this time")
		fs.StringVar(&q.out, "o", "", "write to this file (created with mode 0600) instead of standard output")
	}
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	wantArgs := 0
	if cmd.target {
		wantArgs = 1
	}
	if fs.NArg() != wantArgs {
		fmt.Fprint(stderr, adminUsage)
		return 2
	}
	id := fs.Arg(0)
	if budget != nil && *budget != "all" && *budget != "password" && *budget != "otp" {
		fmt.Fprintf(stderr, "idp admin unlock: -budget must be all, password or otp (got %q)\n", *budget)
		return 2
	}
	var query idp.AuditQuery
	if action == "audit-export" {
		var err1, err2 error
		query = idp.AuditQuery{User: q.user, Actor: q.by, Type: q.typ}
		query.Since, err1 = idp.ParseAuditTime(q.since)
		query.Until, err2 = idp.ParseAuditTime(q.until)
		if err := errors.Join(err1, err2); err != nil {
			fmt.Fprintf(stderr, "idp admin audit-export: %v\n", err)
			return 2
		}
	}
	if yes != nil && !*yes {
		fmt.Fprintf(stderr, "idp admin %s: this would %s of %s.\nNothing was done; run again with -yes to do it.\n",
			action, confirmText[action], id)
		return 2
	}
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
	app := in.app

	if err := authorizeActor(ctx, app, *actor, cmd.need, id); err != nil {
		return adminFailed(stderr, action, id, err)
	}

	switch action {
	case "reset-code":
		code, err := app.IssueResetCode(ctx, *actor, id)
		if err != nil {
			return adminFailed(stderr, action, id, err)
		}
		fmt.Fprintf(stdout, "Reset confirmation code for %s: %s\nValid for %s, only on %s's reset page. Read it out once; it is not shown again.\n",
			id, code, cfg.MFA.Email.ResetCodeLifetime, id)
	case "unlock":
		if *budget != "otp" {
			if err := app.UnlockPassword(ctx, *actor, id); err != nil {
				return adminFailed(stderr, action, id, err)
			}
			fmt.Fprintf(stdout, "Unlocked the password attempts of %s.\n", id)
		}
		if *budget != "password" {
			if err := app.UnlockOTP(ctx, *actor, id); err != nil {
				return adminFailed(stderr, action, id, err)
			}
			fmt.Fprintf(stdout, "Unlocked the one-time passwords of %s.\n", id)
		}
	case "end-sessions", "revoke-browsers":
		ended, err := app.EndUserSessions(ctx, *actor, id)
		if err != nil {
			return adminFailed(stderr, action, id, err)
		}
		fmt.Fprintf(stdout, "Revoked %d trusted browser(s) and %d application grant(s), and ended %d session(s) of %s.\n", ended.TrustedBrowsers, ended.Grants, ended.Sessions, id)
	case "clear-factors":
		ended, err := app.ClearFactors(ctx, *actor, id)
		if err != nil {
			return adminFailed(stderr, action, id, err)
		}
		fmt.Fprintf(stdout, "Cleared the second factors of %s, revoked %d trusted browser(s) and ended %d session(s).\n"+
			"%s registers a factor again at the next login.\n", id, ended.TrustedBrowsers, ended.Sessions, id)
	case "audit-export":
		out := stdout
		if q.out != "" {
			f, err := os.OpenFile(q.out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				fmt.Fprintf(stderr, "idp admin audit-export: %v\n", err)
				return 1
			}
			defer f.Close()
			out = f
		}
		n, err := app.ExportAudit(ctx, *actor, out, query)
		if err != nil {
			fmt.Fprintf(stderr, "idp admin audit-export: %v (after %d events)\n", err, n)
			return 1
		}
		fmt.Fprintf(stderr, "idp admin audit-export: %d event(s)\n", n)
	}
	return 0
}

// confirmText says what a destructive action would do, for the refusal
// without -yes.
var confirmText = map[string]string{
	"end-sessions":    "revoke every trusted browser and end every session",
	"revoke-browsers": "revoke every trusted browser and end every session",
	"clear-factors":   "remove every second factor, revoke every trusted browser and end every session",
}

// errNotStaff: the -actor is a directory account without the action's role.
var errNotStaff = errors.New("actor lacks the staff role")

// authorizeActor applies the console's rules when -actor names a directory
// account: the account must hold the action's role, and may not act on an
// account of a higher role. Any other actor is the operator of this host,
// who holds the config and its secrets and so every power already.
func authorizeActor(ctx context.Context, app *idp.App, actor string, need idp.Role, target string) error {
	role, err := app.StaffRole(ctx, actor)
	switch {
	case errors.Is(err, ldapstore.ErrUserNotFound):
		return nil
	case err != nil:
		return err
	case role < need:
		return fmt.Errorf("%w: %s is a directory account whose role is %s; this action needs %s", errNotStaff, actor, role, need)
	}
	if target == "" {
		return nil
	}
	targetRole, err := app.StaffRole(ctx, target)
	switch {
	case errors.Is(err, ldapstore.ErrUserNotFound):
		return nil // the action reports it
	case err != nil:
		return err
	case targetRole > role:
		return fmt.Errorf("%w: %s (%s) cannot act on %s (%s)", errNotStaff, actor, role, target, targetRole)
	}
	return nil
}

func adminFailed(stderr io.Writer, action, id string, err error) int {
	switch {
	case errors.Is(err, ldapstore.ErrUserNotFound):
		fmt.Fprintf(stderr, "idp admin %s: no account %q in the directory\n", action, id)
	case errors.Is(err, ldapstore.ErrDirectoryUnavailable):
		fmt.Fprintf(stderr, "idp admin %s: the directory is unavailable: %v\n", action, err)
	default:
		fmt.Fprintf(stderr, "idp admin %s: %v\n", action, err)
	}
	return 1
}
