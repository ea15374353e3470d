package ldapstore_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/campusidp/campusidp/internal/testldap"
	"github.com/campusidp/campusidp/ldapstore"
)

// cryptRounds makes each sha512-crypt check cost tens of milliseconds,
// far above the noise of the searches around it.
const cryptRounds = 25000

// medianAuthTimes times wrong-password logins for a known ID and logins
// for unknown IDs, interleaved so that load on the machine hits both
// alike, and returns the median of each.
func medianAuthTimes(t *testing.T, d *ldapstore.Directory, samples int) (known, unknown time.Duration) {
	t.Helper()
	ctx := context.Background()
	auth := func(id string) time.Duration {
		start := time.Now()
		_, err := d.Authenticate(ctx, id, "not-the-password")
		elapsed := time.Since(start)
		if !errors.Is(err, ldapstore.ErrInvalidCredentials) {
			t.Fatalf("Authenticate(%q): %v", id, err)
		}
		return elapsed
	}
	// Warm both pools and slapd's caches first.
	auth(testldap.Bob.ID)
	auth("nobody-at-all")
	var k, u []time.Duration
	for i := range samples {
		if i%2 == 0 {
			k = append(k, auth(testldap.Bob.ID))
			u = append(u, auth("nobody-at-all"))
		} else {
			u = append(u, auth("nobody-at-all"))
			k = append(k, auth(testldap.Bob.ID))
		}
	}
	slices.Sort(k)
	slices.Sort(u)
	return k[len(k)/2], u[len(u)/2]
}

// TestTimingDecoyHidesUnknownIDs: with slow {CRYPT} hashes in the
// directory, an unknown ID bound against the timing decoy costs what a
// known one does (medians within 10%), while without the decoy it is
// plainly faster, which is what told them apart.
func TestTimingDecoyHidesUnknownIDs(t *testing.T) {
	if testing.Short() {
		t.Skip("timing comparison; slow")
	}
	ls := testldap.Start(t, testldap.WithCryptPasswords(cryptRounds), testldap.WithQuietLog())
	// The fixture's hashes are {CRYPT}: the right password still works.
	plain := newDirectory(t, ls.Config())
	if _, err := plain.Authenticate(context.Background(), testldap.Bob.ID, testldap.Bob.Password); err != nil {
		t.Fatalf("login with a {CRYPT} password: %v", err)
	}
	const samples = 41

	known, unknown := medianAuthTimes(t, plain, samples)
	t.Logf("without decoy: known %v, unknown %v", known, unknown)
	if unknown*3/2 > known {
		t.Fatalf("without a decoy the medians are already close (known %v, unknown %v): the hashes are too fast to show anything", known, unknown)
	}

	cfg := ls.Config()
	cfg.TimingDecoyDN = testldap.DecoyDN
	decoyed := newDirectory(t, cfg)
	// A burst of load on a shared machine can skew one run; a real leak
	// (an order of magnitude, as above) fails every run.
	for attempt := 1; ; attempt++ {
		known, unknown = medianAuthTimes(t, decoyed, samples)
		t.Logf("with decoy, run %d: known %v, unknown %v", attempt, known, unknown)
		diff := known - unknown
		if diff < 0 {
			diff = -diff
		}
		if diff*10 <= known {
			break
		}
		if attempt == 3 {
			t.Fatalf("medians differ by more than 10%% in %d runs: known %v, unknown %v", attempt, known, unknown)
		}
	}
	// The decoy never logs anyone in, whatever ID is typed.
	if _, err := decoyed.Authenticate(context.Background(), "timing-decoy", "anything"); !errors.Is(err, ldapstore.ErrInvalidCredentials) {
		t.Errorf("the decoy's name as an ID: %v", err)
	}
}
