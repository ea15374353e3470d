package config

import "time"

// Audit is the audit log's upkeep.
type Audit struct {
	// Retention is how long audit events are kept; the sweeper removes
	// older ones. Exporting them first (to an archive or a SIEM) is the
	// operator's job. 0 keeps them for ever.
	Retention time.Duration `yaml:"retention"`
}

// DefaultAuditRetention is 400 days: a year of history and a margin.
const DefaultAuditRetention = 400 * 24 * time.Hour

func defaultAudit() Audit { return Audit{Retention: DefaultAuditRetention} }

func (a Audit) validate(v *validator, p string) {
	if a.Retention != 0 && (a.Retention < 24*time.Hour || a.Retention > 100*365*24*time.Hour) {
		v.add(p+".retention", "must be 0 (keep for ever) or between 24h and 100 years (got %s)", a.Retention)
	}
}
