package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// result is one scenario's measurements.
type result struct {
	scenario, alg string
	logins        int
	errors        int
	window        time.Duration
	p50, p99      time.Duration
	idpCPU        time.Duration
	slapdCPU      time.Duration
	pgCPU         time.Duration // the PostgreSQL server's, with -store postgres
	benchCPU      time.Duration
	otherCPU      time.Duration // used by other processes on the machine
	peakRSS       int64
	idleRSS       int64
	sampleErrors  []string
	profile       string // CPU profile file, "" when not profiling
	// store is the IdP's store work in the window (from its /metrics);
	// storeErr says why it is missing.
	store    storeWork
	storeErr error
}

// perLogin divides a count of the window by its logins.
func (r result) perLogin(n float64) float64 {
	if r.logins == 0 {
		return 0
	}
	return n / float64(r.logins)
}

func (r result) rate() float64 { return float64(r.logins) / r.window.Seconds() }

// cpuPerLogin is the IdP's CPU time per successful login: on a shared or
// noisy machine a steadier figure than the rate.
func (r result) cpuPerLogin() time.Duration {
	if r.logins == 0 {
		return 0
	}
	return r.idpCPU / time.Duration(r.logins)
}

// measureOptions are the knobs of one timed run.
type measureOptions struct {
	workers    int
	warmup     time.Duration
	duration   time.Duration
	profileDir string
	pgPID      int // the PostgreSQL postmaster, 0 with SQLite
}

// measure runs sc with one virtual browser per worker, each cycling over
// its own share of the users (so one account never logs in twice at once),
// for warmup and then duration. Only logins that end inside the timed
// window count; CPU and memory are read at its edges.
func measure(ctx context.Context, t *target, sc scenario, alg string, idp *idpProcess, slapdPID int, o measureOptions) (result, error) {
	res := result{scenario: sc.name, alg: alg, window: o.duration}
	pid := idp.PID()
	if m, err := readMemory(pid); err == nil {
		res.idleRSS = m.RSS
	}
	_ = resetPeak(pid) // without it, the peak is the process's lifetime peak

	var (
		recording atomic.Bool
		stopping  atomic.Bool
		mu        sync.Mutex
		latencies []time.Duration
		errs      int
		samples   []string
		wg        sync.WaitGroup
	)
	for w := range o.workers {
		var mine []*vuser
		for i := w; i < len(t.users); i += o.workers {
			mine = append(mine, t.users[i])
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			for k := 0; !stopping.Load() && ctx.Err() == nil; k++ {
				u := mine[k%len(mine)]
				start := time.Now()
				ictx, cancel := context.WithTimeout(ctx, 30*time.Second)
				err := sc.once(ictx, t, u)
				cancel()
				if !recording.Load() {
					continue
				}
				if err != nil {
					mu.Lock()
					errs++
					if len(samples) < 5 {
						samples = append(samples, fmt.Sprintf("%s: %v", u.account.ID, err))
					}
					mu.Unlock()
					continue
				}
				local = append(local, time.Since(start))
			}
			mu.Lock()
			latencies = append(latencies, local...)
			mu.Unlock()
		}()
	}

	sleep(ctx, o.warmup)
	// The store counters are read at the window's edges, like the logins:
	// the work of logins straddling an edge evens out.
	metricsClient := &http.Client{Timeout: 5 * time.Second}
	work0, err0 := scrapeStoreWork(ctx, metricsClient, idp.URL)
	// A login counts when it ends inside the window: as many straddle its
	// start (and count) as straddle its end (and do not).
	t0 := time.Now()
	cpu0, _ := cpuTime(pid)
	slapd0, _ := cpuTime(slapdPID)
	pg0 := pgCPU(o.pgPID)
	self0 := selfCPU()
	machine0, _ := machineBusy()
	recording.Store(true)
	profDone := make(chan struct{})
	if o.profileDir != "" {
		res.profile = filepath.Join(o.profileDir, fmt.Sprintf("%s-%s.cpu.pprof", sc.name, alg))
		go func() {
			defer close(profDone)
			secs := max(1, int(o.duration.Seconds()))
			if err := idp.fetchProfile(ctx, "profile", secs, res.profile); err != nil {
				res.profile = "(profile failed: " + err.Error() + ")"
			}
		}()
	} else {
		close(profDone)
	}
	peak := sampleRSS(ctx, pid, o.duration)
	recording.Store(false)
	res.window = time.Since(t0)
	cpu1, _ := cpuTime(pid)
	slapd1, _ := cpuTime(slapdPID)
	pg1 := pgCPU(o.pgPID)
	self1 := selfCPU()
	machine1, _ := machineBusy()
	work1, err1 := scrapeStoreWork(ctx, metricsClient, idp.URL)
	stopping.Store(true)
	wg.Wait()
	<-profDone
	if ctx.Err() != nil {
		return res, ctx.Err()
	}

	if m, err := readMemory(pid); err == nil {
		peak = max(peak, m.HWM)
	}
	res.peakRSS = peak
	res.idpCPU, res.slapdCPU, res.benchCPU = cpu1-cpu0, slapd1-slapd0, self1-self0
	res.pgCPU = pg1 - pg0
	res.otherCPU = max(0, machine1-machine0-res.idpCPU-res.slapdCPU-res.pgCPU-res.benchCPU)
	res.logins, res.errors, res.sampleErrors = len(latencies), errs, samples
	switch {
	case err0 != nil || err1 != nil:
		res.storeErr = errors.Join(err0, err1)
	case !work0.ok || !work1.ok:
		res.storeErr = errors.New("the IdP's /metrics has no idp_store_* counters")
	default:
		res.store = work1.sub(work0)
	}
	slices.Sort(latencies)
	res.p50, res.p99 = percentile(latencies, 0.50), percentile(latencies, 0.99)
	return res, nil
}

// pgCPU is the PostgreSQL server's CPU time so far, 0 without one.
func pgCPU(pid int) time.Duration {
	if pid == 0 {
		return 0
	}
	d, _ := treeCPU(pid)
	return d
}

// sampleRSS waits d, reading the process's RSS every 100ms, and returns the
// largest value seen.
func sampleRSS(ctx context.Context, pid int, d time.Duration) int64 {
	var peak int64
	end := time.Now().Add(d)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(end) {
		select {
		case <-ctx.Done():
			return peak
		case <-tick.C:
			if m, err := readMemory(pid); err == nil {
				peak = max(peak, m.RSS)
			}
		}
	}
	return peak
}

// percentile of sorted latencies (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
