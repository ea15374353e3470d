package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// storeWork is the IdP's cumulative store work, read from its /metrics
// (idp_store_write_transactions_total, idp_store_statements_total{kind}):
// counted on the database connections, not estimated.
type storeWork struct {
	writeTx, reads, writes float64
	ok                     bool // the counters were found
}

func (w storeWork) sub(o storeWork) storeWork {
	return storeWork{writeTx: w.writeTx - o.writeTx, reads: w.reads - o.reads, writes: w.writes - o.writes, ok: w.ok && o.ok}
}

// scrapeStoreWork reads the counters from base/metrics (served to loopback
// clients by default).
func scrapeStoreWork(ctx context.Context, client *http.Client, base string) (storeWork, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return storeWork{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return storeWork{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return storeWork{}, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	var w storeWork
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var dst *float64
		switch {
		case strings.HasPrefix(line, "idp_store_write_transactions_total "):
			dst = &w.writeTx
		case strings.HasPrefix(line, `idp_store_statements_total{kind="read"} `):
			dst = &w.reads
		case strings.HasPrefix(line, `idp_store_statements_total{kind="write"} `):
			dst = &w.writes
		default:
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			return storeWork{}, fmt.Errorf("/metrics: %q: %w", line, err)
		}
		*dst = v
		found++
	}
	if err := sc.Err(); err != nil {
		return storeWork{}, err
	}
	w.ok = found == 3
	return w, nil
}
