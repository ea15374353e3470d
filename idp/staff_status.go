package idp

import (
	"context"
	"time"

	"github.com/campusidp/campusidp/mfa"
)

// AccountStatus is what staff see of an account's second factors, trusted
// browsers and failure budgets (never a secret or a full address).
type AccountStatus struct {
	// Factors are the registered second factors.
	Factors []FactorInfo
	// RecoveryCodes counts the unused recovery codes.
	RecoveryCodes int
	// FactorsUpdated is when the factor settings last changed (zero: never).
	FactorsUpdated  time.Time
	TrustedBrowsers []TrustedBrowser
	// OTP is the account-wide one-time password failure budget.
	OTP Budget
	// Password is the account's password failure budget.
	Password Budget
}

// FactorInfo is one registered second factor as staff see it.
type FactorInfo struct {
	// Method is "email", "totp" or "webauthn" (one row per security key,
	// Detail its name and model).
	Method string
	// Detail is the masked address of an email factor ("" otherwise).
	Detail     string
	EnrolledAt time.Time
	LastUsed   time.Time // zero: never
}

// Budget is how much of a failure budget is spent, and its lock.
type Budget struct {
	Failures, Limit int
	Locked          bool
	Until           time.Time // when a lock ends
}

func factorInfos(f *Factors) []FactorInfo {
	var out []FactorInfo
	if f.Email != nil {
		out = append(out, FactorInfo{Method: "email", Detail: mfa.MaskAddress(f.Email.Address),
			EnrolledAt: f.Email.EnrolledAt, LastUsed: f.Email.LastUsed})
	}
	if f.TOTP != nil {
		out = append(out, FactorInfo{Method: "totp", EnrolledAt: f.TOTP.EnrolledAt, LastUsed: f.TOTP.LastUsed})
	}
	return out
}

// passwordBudgetKey names the per-ID password budget; it must match the key
// checkPassword spends from.
func passwordBudgetKey(id string) string { return passwordIDKey(CanonicalID(id)) }

// AccountStatus gathers what the console shows about the account userID
// (as the directory spells it).
func (a *App) AccountStatus(ctx context.Context, userID string) (*AccountStatus, error) {
	f, err := a.loadFactors(ctx, userID)
	if err != nil {
		return nil, err
	}
	st := &AccountStatus{Factors: factorInfos(f), RecoveryCodes: len(f.Recovery), FactorsUpdated: f.UpdatedAt}
	if a.keys != nil {
		keys, err := a.keys.Keys(ctx, userID)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			detail := k.Name
			if k.AAGUID != "" {
				detail += " (AAGUID " + k.AAGUID + ")"
			}
			st.Factors = append(st.Factors, FactorInfo{Method: MethodSecurityKey, Detail: detail, EnrolledAt: k.Created, LastUsed: k.LastUsed})
		}
	}
	if st.TrustedBrowsers, err = a.TrustedBrowsers(ctx, userID); err != nil {
		return nil, err
	}
	failures, err := a.codes.Failures(ctx, userID)
	if err != nil {
		return nil, err
	}
	locked, until, err := a.codes.Lock(ctx, userID)
	if err != nil {
		return nil, err
	}
	// Failures and Lock are the account-wide ceiling (sessions have their own budgets).
	otpLimit := a.cfg.MFA.Email.AccountFailureLimit
	st.OTP = Budget{Failures: min(failures, otpLimit), Limit: otpLimit, Locked: locked}
	if locked {
		st.OTP.Until = until
	}
	pw, err := a.store.GetCounter(ctx, passwordBudgetKey(userID), a.now())
	if err != nil {
		return nil, err
	}
	limit := a.cfg.Security.PasswordBudget.PerID.Limit
	// checkPassword refuses an attempt that would pass the limit, so a
	// spent budget locks the next one. Refused attempts past the limit
	// count too; show the budget, not them.
	st.Password = Budget{Failures: min(pw.Count, limit), Limit: limit, Locked: pw.Count >= limit}
	if st.Password.Locked {
		st.Password.Until = pw.ResetAt
	}
	return st, nil
}
