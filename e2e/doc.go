// Package e2e drives the IdP's pages in a real browser (Debian's chromium,
// headless, through chromedp): the flows of the user manual screen by screen,
// and the page rules every screen must keep (no inline script or style, no
// CSP violation or console error, a label for every input, Japanese and
// English marked with lang and Japanese first, usable at 375 px, the login by
// keyboard alone). The tests write a desktop and a phone screenshot of each
// screen to $IDP_SCREENSHOTS (a relative path counts from the module root;
// unset: a temporary directory removed after the run).
//
// The package holds tests only. They run in the normal go test ./...; without
// /usr/bin/chromium they fail and say to run scripts/test.sh, which installs
// it with apt.
package e2e
