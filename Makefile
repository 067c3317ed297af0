# Payment Recovery: one entry point.
#   make            build the extension
#   make install    install it into PostgreSQL 15 (root)
#   make deps       install missing Debian packages (root)
#   make run        build, install, start PostgreSQL with demo data
#   make stop       stop what make run started
#   make test       the same on a throwaway cluster, then every test
#   make bench      benchmarks (prints ratios)

PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
PG_PORT   ?= 5499
RUN_DIR   := $(CURDIR)/.pgdata

export PG_CONFIG
export PATH := $(shell dirname $(PG_CONFIG)):$(PATH)

.PHONY: all install deps run stop test bench clean

all:
	@test -x $(PG_CONFIG) || { echo "PostgreSQL 15 server headers missing: run 'make deps' as root" >&2; exit 1; }
	$(MAKE) -C pg_recovery

install: all
	$(MAKE) -C pg_recovery install

deps:
	@scripts/deps.sh

run: deps install
	@scripts/cluster.sh start $(RUN_DIR) $(PG_PORT)
	@scripts/cluster.sh psql $(RUN_DIR) -q -v ON_ERROR_STOP=1 -f sql/demo.sql
	@scripts/print-run-info.sh $(RUN_DIR) $(PG_PORT)

stop:
	@scripts/cluster.sh stop $(RUN_DIR)
	@echo "stopped PostgreSQL of $(RUN_DIR)"

test: deps install
	@scripts/test.sh

bench: deps install
	@bench/audit-overhead.sh

clean:
	$(MAKE) -C pg_recovery clean
