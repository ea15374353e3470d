package idp

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/campusidp/campusidp/store"
)

// unitBeginner is a Store that can collect a request's changes and write
// them in one transaction (store.DB). A store without it is written call by
// call, as before.
type unitBeginner interface {
	BeginUnit(ctx context.Context) (context.Context, store.UnitOfWork)
}

// unitOfWork gives every request one unit of work: every call the request
// makes to the store through its context — the core's, the front-ends',
// plug-ins', the session store's — is collected and committed once, in one
// write transaction, just before the response's headers go out. So a
// failed commit can still become the 503 page, and nothing a request
// changed exists without the audit rows describing it. A handler that
// panics commits nothing (recoverPanics is outside).
//
// Budget counters are not deferred (the store spends them at once), and a
// browser session kept in Redis is written by scs directly: Redis cannot
// join the SQL transaction.
func (a *App) unitOfWork(next http.Handler) http.Handler {
	b, ok := a.store.(unitBeginner)
	if !ok {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, u := b.BeginUnit(r.Context())
		uw := &unitWriter{ResponseWriter: w, app: a, r: r.WithContext(ctx), unit: u}
		next.ServeHTTP(uw, uw.r)
		uw.commit()
	})
}

// unitWriter commits the request's unit before the first byte of the
// response, and swallows the handler's response when the commit failed
// (the error page went out instead).
type unitWriter struct {
	http.ResponseWriter
	app       *App
	r         *http.Request
	unit      store.UnitOfWork
	committed bool
	failed    bool
}

func (uw *unitWriter) commit() {
	if uw.committed {
		return
	}
	uw.committed = true
	err := uw.unit.Commit(uw.r.Context())
	if err == nil {
		return
	}
	uw.failed = true
	// Whatever refused the commit (an outage, a full disk, a trigger, or
	// another request that changed the same record first, as a code used
	// twice at once), nothing of this request happened and it may be
	// retried: the 503 page, as for an audit row the store refused.
	if !errors.Is(err, ErrUnavailable) {
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	h := uw.ResponseWriter.Header()
	for _, k := range []string{"Location", "Set-Cookie", "Content-Type", "Content-Length", "Content-Disposition", "Cache-Control"} {
		h.Del(k)
	}
	// The page must not touch the session: its changes were just lost.
	rs, _ := uw.r.Context().Value(ctxRequestState).(*requestState)
	if rs != nil {
		loaded := rs.sessionLoaded
		rs.sessionLoaded = false
		defer func() { rs.sessionLoaded = loaded }()
	}
	uw.app.serverError(uw.ResponseWriter, uw.r, fmt.Errorf("committing the request's changes: %w", err))
}

func (uw *unitWriter) WriteHeader(code int) {
	uw.commit()
	if uw.failed {
		return
	}
	uw.ResponseWriter.WriteHeader(code)
}

func (uw *unitWriter) Write(b []byte) (int, error) {
	uw.commit()
	if uw.failed {
		return len(b), nil
	}
	return uw.ResponseWriter.Write(b)
}

func (uw *unitWriter) Unwrap() http.ResponseWriter { return uw.ResponseWriter }
