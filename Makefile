# Entry points; the scripts and commands they run work on their own too.
.PHONY: test bench

# The whole test suite (installs slapd/ldap-utils with apt if missing).
test:
	scripts/test.sh

# Load benchmark: private slapd with 1,000 users, `idp serve`, 32 virtual
# browsers, 20s per scenario. Extra flags: make bench BENCH_FLAGS="-c 8 -duration 5s"
bench:
	scripts/bench.sh $(BENCH_FLAGS)
