package ldapstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-ldap/ldap/v3"
)

var (
	// ErrInvalidCredentials is the one generic outcome for an unknown ID, a
	// wrong password and a disabled account; FailureReason tells them apart
	// for the audit log.
	ErrInvalidCredentials = errors.New("ldapstore: invalid credentials")
	// ErrDirectoryUnavailable means the directory could not answer: network
	// failure, timeout, server busy or down, or a broken configuration. It
	// is an outage, never a failed login. The cause is wrapped alongside.
	ErrDirectoryUnavailable = errors.New("ldapstore: directory unavailable")
	// ErrUserNotFound is returned by Lookup when no single entry matches.
	ErrUserNotFound = errors.New("ldapstore: user not found")
)

// Failure reasons returned by FailureReason. They are meant for the audit
// log only; users always see the same generic message.
const (
	ReasonUnknownID     = "unknown_id"
	ReasonWrongPassword = "wrong_password"
	ReasonDisabled      = "disabled"
	ReasonEmptyPassword = "empty_password"
	ReasonInvalidID     = "invalid_id"
	// ReasonAmbiguousID: the filter matched more than one entry, a
	// directory data problem that is also logged as a warning.
	ReasonAmbiguousID = "ambiguous_id"
	// ReasonAccountRefused: the server refused the bind for a reason other
	// than the password (locked or inactivated account, policy).
	ReasonAccountRefused = "account_refused"
)

// credentialError is a credential failure carrying its audit reason. Its
// message is deliberately the same for every reason.
type credentialError struct{ reason string }

func (e *credentialError) Error() string        { return ErrInvalidCredentials.Error() }
func (e *credentialError) Is(target error) bool { return target == ErrInvalidCredentials }

func invalidCredentials(reason string) error { return &credentialError{reason: reason} }

// FailureReason returns why Authenticate refused the credentials
// (one of the Reason constants), or "" if err is not a credential failure.
func FailureReason(err error) string {
	var ce *credentialError
	if errors.As(err, &ce) {
		return ce.reason
	}
	return ""
}

// unavailable wraps cause as a directory outage.
func unavailable(cause error) error {
	return fmt.Errorf("%w: %w", ErrDirectoryUnavailable, cause)
}

// retryable reports whether err means the connection or server is unusable,
// so the operation deserves one more try on a fresh connection, possibly
// to another server.
func retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		// No error, or the caller gave up and trying again would ignore that.
		return false
	}
	var le *ldap.Error
	if errors.As(err, &le) {
		switch le.ResultCode {
		case ldap.ErrorNetwork, ldap.LDAPResultServerDown, ldap.LDAPResultConnectError,
			ldap.LDAPResultTimeout, ldap.LDAPResultBusy, ldap.LDAPResultUnavailable:
			return true
		}
		return false
	}
	// go-ldap reports some transport failures (a failed write, a closed
	// reader) as plain errors rather than LDAP results.
	return true
}

// brokenConn reports whether a connection that produced err must not go
// back to the pool: after a network error or a client-side timeout the
// stream may be half-read or closed.
func brokenConn(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var le *ldap.Error
	if errors.As(err, &le) {
		switch le.ResultCode {
		case ldap.ErrorNetwork, ldap.LDAPResultServerDown, ldap.LDAPResultConnectError, ldap.LDAPResultTimeout,
			ldap.ErrorUnexpectedMessage, ldap.ErrorUnexpectedResponse:
			return true
		}
		return false
	}
	// Anything that is not an LDAP result came from the transport.
	return true
}

// hasCode reports whether err is an LDAP result with one of codes.
func hasCode(err error, codes ...uint16) bool {
	return ldap.IsErrorAnyOf(err, codes...)
}
