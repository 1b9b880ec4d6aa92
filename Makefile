# pgmux — PostgreSQL connection pooler and read/write router.
# Plain GNU make: `make help` lists the targets.

PREFIX   ?= /usr/local
DESTDIR  ?=
BINDIR   ?= $(PREFIX)/bin
SYSCONFDIR ?= /etc
MANDIR   ?= $(PREFIX)/share/man
UNITDIR  ?= $(PREFIX)/lib/systemd/system

CC       ?= cc
VERSION  := 0.1.0
PYTHON   ?= /usr/bin/python3

PKGS     := libcares inih openssl libpq libcurl json-c
WARN     := -std=gnu11 -Wall -Wextra -Werror -Wmissing-prototypes -Wstrict-prototypes \
            -Wold-style-definition -Wpointer-arith -Wundef -Wformat=2 -Wshadow \
            -Wimplicit-fallthrough -Wvla -Wno-unused-parameter -Wno-missing-field-initializers
OPT      ?= -O2 -g
CFLAGS   += $(OPT) $(WARN) -Iinclude -D_GNU_SOURCE -DPGMUX_VERSION='"$(VERSION)"'
# libpg_query (PostgreSQL's grammar, for shard keys in SQL) ships no pkg-config file.
LDLIBS   += -lev -lpg_query

# Hardening: stack canaries, read-only relocations bound at start-up (no writable GOT), and
# checked libc calls where the compiler knows buffer sizes (not under ASan, which checks more).
CFLAGS   += -fstack-protector-strong
LDFLAGS  += -Wl,-z,relro,-z,now

ifeq ($(SANITIZE),1)
BUILD    ?= build/san
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -DPGMUX_CHECKS=1
LDFLAGS  += -fsanitize=address,undefined
else
BUILD    ?= build/rel
CFLAGS   += -DPGMUX_CHECKS=1 -D_FORTIFY_SOURCE=2
endif

ifeq ($(V),1)
Q :=
else
Q := @
endif

SRCS     := $(shell find src -name '*.c' | sort)
OBJS     := $(patsubst %.c,$(BUILD)/%.o,$(SRCS))
LIBOBJS  := $(filter-out $(BUILD)/src/main.o,$(OBJS))
UNIT_SRCS := $(sort $(wildcard test/unit/test_*.c))
UNIT_BINS := $(patsubst test/unit/%.c,$(BUILD)/test/%,$(UNIT_SRCS))

PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

.PHONY: all pgmux deps check fuzz-replay modgraph callgraph unit integration demo demo-ha demo-shards bench bench-routing bench-shards bench-shards-tps bench-moves bench-metrics fuzz install deb rpm check-packages clean format format-check help
all: deps pgmux

# Cheap when everything is installed: the script checks with dpkg-query first.
deps:
	@packaging/install-deps.sh

# ./pgmux is the binary of the last build asked for (release or SANITIZE=1), whichever is newer.
pgmux: $(BUILD)/pgmux
	$(Q)cmp -s $< $@ || { rm -f $@ && cp $< $@; }

$(BUILD)/pgmux: $(OBJS)
	@echo "  LD    $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC    $<"
	$(Q)$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -c -o $@ $<

# A unit test links only the modules it names on its "/* link: ... */" line, plus nothing else:
# if a test needs the whole daemon, the module boundary is wrong.
$(BUILD)/test/%: test/unit/%.c $(LIBOBJS)
	@mkdir -p $(dir $@)
	@echo "  TEST  $@"
	$(Q)$(CC) $(CFLAGS) $(PKG_CFLAGS) -MMD -MP -o $@ $< \
	    $(patsubst %.c,$(BUILD)/%.o,$(shell sed -n 's|^/\* link: \(.*\) \*/$$|\1|p' $<)) \
	    $(LDFLAGS) $(shell pkg-config --libs cmocka) $(PKG_LIBS) $(LDLIBS)

# The module graph from the #include lines: fails on an arrow DESIGN.md forbids or on a cycle
# through topo, admin, route or shard.
modgraph:
	$(Q)$(PYTHON) tools/modgraph.py .
	$(Q)$(PYTHON) tools/clientwrites.py .

# The module graph from the calls the built objects make (what includes through another
# module's header hide), checked against the same rules; and no exported function unused.
callgraph: pgmux
	$(Q)$(PYTHON) tools/callgraph.py $(BUILD)
	$(Q)$(PYTHON) tools/callgraph.py $(BUILD) --dead

unit: deps $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

integration: deps pgmux
	$(Q)test/integration/run.sh

# The format and the module graph first (cheap, and a broken wall is cheaper to fix before the
# tests pass on it).
# The config unit test also checks that every key is documented in etc/pgmux.ini and the man page.
check: deps format-check modgraph pgmux callgraph unit fuzz-replay integration
	@echo "make check: all tests passed"

demo: deps pgmux
	$(Q)$(PYTHON) test/demo/demo.py

demo-ha: deps pgmux
	$(Q)$(PYTHON) test/demo/demo_ha.py

demo-shards: deps pgmux
	$(Q)$(PYTHON) test/demo/demo_shards.py

bench: deps pgmux
	$(Q)$(PYTHON) bench/bench.py $(if $(QUICK),--quick)

# What read/write routing costs pgmux (routing on vs off against one server) and where reads go
# with two replicas; also times the classifier alone (test_classify --bench).
bench-routing: deps pgmux $(BUILD)/test/test_classify
	$(Q)$(PYTHON) bench/routing.py $(if $(QUICK),--quick) --classify $(BUILD)/test/test_classify

# The CPU cost of scraping /metrics once a second with 1,000 pools (goal: under 1 % of a core).
bench-metrics: deps pgmux
	$(Q)$(PYTHON) bench/metrics_cost.py

# What the shard map gives and costs: balance over 1M keys, keys moved when a shard is added
# (none between old shards), ns per key for hash + lookup. Pure C against src/shard: a few seconds.
# Then bench-shards-tps.
bench-shards: $(BUILD)/bench/shard_bench
	$(Q)$<
	$(Q)$(MAKE) --no-print-directory bench-shards-tps

# pgbench -M prepared and simple through a 2-shard database (key from the SQL, key from a hint)
# and through one unsharded server, interleaved: tps and ratios. About 4 minutes (QUICK=1: 1).
bench-shards-tps: deps pgmux
	$(Q)$(PYTHON) bench/shards.py $(if $(QUICK),--quick)

# A bucket move of 1M rows under writers: copy rate, the moving keys' pause at the cutover, the
# other keys' latency before and during, the clean-up. About a minute (QUICK=1: 200,000 rows).
bench-moves: deps pgmux
	$(Q)$(PYTHON) bench/moves.py $(if $(QUICK),--quick)

$(BUILD)/bench/shard_bench: bench/shard_bench.c $(BUILD)/src/shard/bucket.o $(BUILD)/src/shard/map.o
	@mkdir -p $(dir $@)
	@echo "  LD    $@"
	$(Q)$(CC) $(CFLAGS) -MMD -MP -o $@ $^ $(LDFLAGS) $(PKG_LIBS) $(LDLIBS)

install: pgmux
	install -D -m 0755 pgmux $(DESTDIR)$(BINDIR)/pgmux
	install -D -m 0644 etc/pgmux.ini $(DESTDIR)$(SYSCONFDIR)/pgmux/pgmux.ini
	install -D -m 0644 doc/pgmux.1 $(DESTDIR)$(MANDIR)/man1/pgmux.1
	install -D -m 0644 doc/pgmux.ini.5 $(DESTDIR)$(MANDIR)/man5/pgmux.ini.5
	@# the units name the packaged paths: point them at this installation's
	@for u in pgmux.service pgmux.socket; do \
	    sed -e 's|/usr/bin/pgmux|$(BINDIR)/pgmux|g' -e 's|/etc/pgmux/|$(SYSCONFDIR)/pgmux/|g' etc/$$u > $(BUILD)/$$u && \
	    install -D -m 0644 $(BUILD)/$$u $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done

# The tree as it is (uncommitted changes included), without build output, for the packages.
PKG_TREE = tar -c --exclude=./build --exclude=./pgmux --exclude=./.git --exclude=__pycache__ .

# Debian package with the Debian tools, from packaging/debian, in build/deb (also when the tree
# has uncommitted changes: it is built from a copy of the tree as it is).
deb: deps
	@rm -rf build/deb && mkdir -p build/deb/pgmux-$(VERSION)
	$(Q)$(PKG_TREE) | tar -x -C build/deb/pgmux-$(VERSION)
	$(Q)cp -r packaging/debian build/deb/pgmux-$(VERSION)/debian
	$(Q)cd build/deb/pgmux-$(VERSION) && dpkg-buildpackage -b -us -uc > ../build.log 2>&1 || \
	    { tail -n 40 ../build.log; exit 1; }
	@ls build/deb/*.deb

# RPM package: rpmbuild -bb packaging/rpm/pgmux.spec in build/rpm. On Debian the build
# dependencies are Debian packages that rpm's database does not know: --nodeps there.
RPMBUILD_FLAGS ?= $(if $(wildcard /etc/debian_version),--nodeps)
rpm: deps
	@rm -rf build/rpm && mkdir -p build/rpm/SOURCES
	$(Q)$(PKG_TREE) --transform 's|^\.|pgmux-$(VERSION)|' -z -f build/rpm/SOURCES/pgmux-$(VERSION).tar.gz
	$(Q)rpmbuild -bb $(RPMBUILD_FLAGS) --define "_topdir $(CURDIR)/build/rpm" \
	    --define "pgmux_version $(VERSION)" packaging/rpm/pgmux.spec > build/rpm/build.log 2>&1 || \
	    { tail -n 40 build/rpm/build.log; exit 1; }
	@ls build/rpm/RPMS/*/*.rpm

# Builds both packages, then as root: lintian, dpkg -i, the installed pgmux started as the
# pgmux user against a test PostgreSQL and used with psql, dpkg -r, dpkg -P; the rpm's files,
# scriptlets and dependencies (test/integration/test_packages.py). Installs and removes the
# package on this machine: not part of make check; .ci/run runs it after make check.
check-packages: deb rpm
	$(Q)PGMUX_CHECK_PACKAGES=1 test/integration/run.sh test/integration/test_packages.py

# libFuzzer targets (clang): each links only the sources on its "/* link: ... */" line and runs
# FUZZ_RUNS inputs (a crash, leak or sanitizer report stops make with the input saved in
# build/fuzz). The corpus in build/fuzz/corpus-NAME grows from run to run, starting from the
# inputs in test/fuzz/seeds/NAME if there are any. Not part of `make check`: fuzzing is
# open-ended.
FUZZ_SRCS    := $(sort $(wildcard test/fuzz/fuzz_*.c))
FUZZ_RUNS    ?= 1000000
fuzz:
	@command -v clang >/dev/null || { echo "make fuzz needs clang and libclang-rt-14-dev"; exit 1; }
	@mkdir -p build/fuzz
	@set -e; for f in $(FUZZ_SRCS); do \
	    name=$$(basename $$f .c); \
	    srcs=$$(sed -n 's|^/\* link: \(.*\) \*/$$|\1|p' $$f); \
	    echo "  FUZZ  $$name ($(FUZZ_RUNS) runs)"; \
	    clang -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -D_GNU_SOURCE -DPGMUX_CHECKS=1 \
	        -o build/fuzz/$$name $$f $$srcs $$(pkg-config --cflags --libs openssl json-c) -lpg_query; \
	    mkdir -p build/fuzz/corpus-$$name; \
	    build/fuzz/$$name -runs=$(FUZZ_RUNS) -print_final_stats=1 \
	        -artifact_prefix=build/fuzz/$$name- build/fuzz/corpus-$$name \
	        $$(test -d test/fuzz/seeds/$$name && echo test/fuzz/seeds/$$name) \
	        > build/fuzz/$$name.log 2>&1 || { tail -n 40 build/fuzz/$$name.log; exit 1; }; \
	    grep -E '^Done|number_of_executed_units' build/fuzz/$$name.log | sed 's/^/        /'; \
	done

# Every fuzz target built with the project's compiler and warnings against test/fuzz/replay.c
# instead of libFuzzer, run on an empty input and its seeds: part of `make check`, so targets
# follow API changes and seeds stay regression tests.
FUZZ_REPLAY_BINS := $(patsubst test/fuzz/%.c,$(BUILD)/fuzz-replay/%,$(FUZZ_SRCS))

fuzz-replay: deps $(FUZZ_REPLAY_BINS)
	@set -e; for b in $(FUZZ_REPLAY_BINS); do \
	    name=$$(basename $$b); \
	    echo "  REPLAY $$name"; \
	    $$b $$(test -d test/fuzz/seeds/$$name && find test/fuzz/seeds/$$name -type f | sort); \
	done

$(BUILD)/fuzz-replay/%: test/fuzz/%.c test/fuzz/replay.c $(shell find src include -name '*.[ch]')
	@mkdir -p $(dir $@)
	@echo "  CC    $@"
	$(Q)$(CC) $(CFLAGS) -Wno-missing-prototypes $(PKG_CFLAGS) $(LDFLAGS) -o $@ $< test/fuzz/replay.c \
	    $$(sed -n 's|^/\* link: \(.*\) \*/$$|\1|p' $<) $(PKG_LIBS) $(LDLIBS)

# The C sources clang-format keeps to .clang-format.
FORMAT_SRCS = $(SRCS) $(sort $(shell find include -name '*.h')) $(UNIT_SRCS) $(FUZZ_SRCS)

format:
	clang-format -i $(FORMAT_SRCS)

# Fails when `make format` would change a file; lists those files and how many lines would
# change (removed plus added). Part of `make check`: a change comes formatted.
format-check:
	@command -v clang-format >/dev/null || { echo "make format-check needs clang-format"; exit 1; }
	@total=0; for f in $(FORMAT_SRCS); do \
	    n=$$(clang-format --style=file "$$f" | diff "$$f" - | grep -c '^[<>]'); \
	    if [ "$$n" -ne 0 ]; then echo "  $$f: $$n lines"; total=$$((total + n)); fi; \
	done; \
	if [ "$$total" -ne 0 ]; then echo "format-check: $$total lines would change (make format)"; exit 1; fi; \
	echo "format-check: ok"

clean:
	rm -rf build pgmux

help:
	@echo "make            build ./pgmux (installs missing build dependencies first)"
	@echo "make check      module graph, unit + integration tests against real PostgreSQL 15 (SANITIZE=1 for ASan+UBSan)"
	@echo "make unit       cmocka unit tests only"
	@echo "make modgraph   module graph from the #include lines, checked against DESIGN.md's rules;"
	@echo "                struct client written only by the client module (tools/clientwrites.py)"
	@echo "make callgraph  module graph from the objects' calls, same rules; no unused exported function"
	@echo "make demo       PostgreSQL primary + 2 replicas behind pgmux: pooling and read/write routing"
	@echo "make demo-ha    a Patroni switchover under load through pgmux: how long writes wait"
	@echo "make demo-shards  10,000 users over two clusters through one connection string, a third added online"
	@echo "make bench      pgbench through pgmux, PgBouncer and direct (QUICK=1 for a short run)"
	@echo "make bench-routing  cost of read/write routing, and reads on replicas (QUICK=1 for a short run)"
	@echo "make bench-shards  shard map balance, keys moved when adding a shard, ns per key; then bench-shards-tps"
	@echo "make bench-metrics  CPU cost of scraping /metrics once a second with 1,000 pools"
	@echo "make bench-shards-tps  pgbench through 2 shards vs one unsharded server (QUICK=1 for a short run)"
	@echo "make bench-moves   a bucket move of 1M rows under writers: copy rate, pauses (QUICK=1: 200k)"
	@echo "make fuzz       libFuzzer targets, FUZZ_RUNS=1000000 inputs each (needs clang)"
	@echo "make fuzz-replay  every fuzz target built with gcc, run on its seeds (in make check)"
	@echo "make install    install binary, config, man pages and systemd units (PREFIX=, DESTDIR=)"
	@echo "make deb        Debian package in build/deb (dpkg-buildpackage)"
	@echo "make rpm        RPM package in build/rpm (rpmbuild)"
	@echo "make check-packages  build both, install the .deb here, run it, remove and purge it (root)"
	@echo "make format     clang-format the sources"
	@echo "make format-check  fail when make format would change a file"
	@echo "V=1             show full command lines"

-include $(OBJS:.o=.d) $(UNIT_BINS:=.d) $(BUILD)/bench/shard_bench.d
