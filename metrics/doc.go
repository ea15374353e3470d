// Package metrics holds the IdP's Prometheus metrics: one Metrics value per
// process, with one small method per event that the login core, the
// protocol front-ends and the wiring call. Every method is a no-op on a nil
// *Metrics, so code that may run without metrics (library use, tests) calls
// them unconditionally.
//
// Label values come from fixed sets or from registered route patterns,
// never from user input, so the number of series stays bounded.
//
// # Where to start
//
// The idp binary uses New (a registry of its own, with the runtime
// collectors, served by Handler). A program embedding the IdP passes its own
// registry as idp.Options.Registerer (or the result of NewIn as
// idp.Options.Metrics), and serves it itself; with neither, the IdP keeps no
// metrics.
package metrics
