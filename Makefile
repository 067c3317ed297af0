# Payment Recovery: one entry point.
#   make            build the extension, the nginx module and the unit tests
#   make install    install the extension into PostgreSQL 15 (root)
#   make deps       install missing Debian packages (root)
#   make run        build, install, start PostgreSQL with demo data and nginx
#                   (HA=1: three nodes under Patroni with etcd, in .pgdata/ha)
#   make stop       stop what make run started
#   make backup     a backup of the make run cluster now (TYPE=full|diff|incr)
#   make restore    restore it: TIME='2026-12-04 10:15:00+00', TIME=latest or LSN=0/5000060
#   make test       the same on a throwaway cluster, then every test
#   make bench      benchmarks (prints ratios)
#   make fuzz       the parsers under libFuzzer (FUZZ_SECONDS each)
#   make soak       make test's prove stage N times (N=10), STRESS=1 with both cores busy

PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
PG_PORT   ?= 5499
NGINX_PORT ?= 8080
TLS_PORT  ?= 8443
RUN_DIR   := $(CURDIR)/.pgdata
HA_DIR    := $(RUN_DIR)/ha
NGINX_DIR := $(CURDIR)/tmp/nginx-run
JWT_CFLAGS = -g -O1 -Wall -Wextra -fsanitize=address,undefined -fno-omit-frame-pointer \
	-Ingx_recovery $(shell pkg-config --cflags json-c 2>/dev/null)

export PG_CONFIG
export PATH := $(shell dirname $(PG_CONFIG)):$(PATH)

.PHONY: all extension module install deps run stop backup restore test soak bench clean fuzz

all: extension module build/jwt-test build/statement-reader-test

extension:
	@test -x $(PG_CONFIG) || { echo "PostgreSQL 15 server headers missing: run 'make deps' as root" >&2; exit 1; }
	$(MAKE) -C pg_recovery

module:
	@scripts/build-module.sh

# the C unit tests of the JWT code, with AddressSanitizer and UBSan
build/jwt-test: t/unit/jwt-test.c ngx_recovery/ngx_http_recovery_jwt.c ngx_recovery/ngx_http_recovery_jwt.h
	@mkdir -p build
	$(CC) $(JWT_CFLAGS) -o $@ t/unit/jwt-test.c ngx_recovery/ngx_http_recovery_jwt.c -ljson-c -lcrypto

# the statement reader's thread, with ThreadSanitizer
READER_SOURCES := pg_recovery/statement_reader.c pg_recovery/payment_line.c pg_recovery/payment_csv.c \
	pg_recovery/payment_tokens.c pg_recovery/extract_csv.c pg_recovery/extract_common.c
build/statement-reader-test: t/unit/statement-reader-test.c $(READER_SOURCES) $(wildcard pg_recovery/*.h)
	@mkdir -p build
	$(CC) -g -O1 -Wall -Wextra -fsanitize=thread -Ipg_recovery -o $@ t/unit/statement-reader-test.c \
		$(READER_SOURCES) -lcrypto -lpthread

# libFuzzer targets of the parsers (clang, AddressSanitizer, UBSan), each
# run for FUZZ_SECONDS on the seed corpus in t/fuzz/corpus after replaying
# the inputs that once crashed it (t/fuzz/regressions)
FUZZ_SECONDS ?= 20
FUZZ_CC := clang-14
FUZZ_CFLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
	-Ipg_recovery $(shell pkg-config --cflags gmime-3.0 2>/dev/null)
FUZZ_PARSERS := pg_recovery/extract_common.c pg_recovery/extract_csv.c \
	pg_recovery/extract_text.c pg_recovery/extract_email.c pg_recovery/statement_reader.c \
	pg_recovery/payment_line.c pg_recovery/payment_csv.c pg_recovery/payment_tokens.c t/fuzz/alloc.c
FUZZ_TARGETS := build/fuzz-csv build/fuzz-text build/fuzz-email

build/fuzz-%: t/fuzz/fuzz_%.c $(FUZZ_PARSERS) $(wildcard pg_recovery/*.h)
	@mkdir -p build
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_PARSERS) $(shell pkg-config --libs gmime-3.0) -lcrypto -lpthread

# recovery-parse's parsers (parse/), each with the libraries it reads through
STATEMENT_LIBS := libxml-2.0 poppler-glib zlib freexl
STATEMENT_PARSERS := parse/statement.c parse/input.c parse/camt.c parse/mt940.c parse/zip.c \
	parse/xlsx.c parse/xls.c parse/sheet.c parse/pdf.c pg_recovery/extract_common.c \
	pg_recovery/extract_csv.c t/fuzz/alloc.c
STATEMENT_FUZZ_TARGETS := build/fuzz-camt build/fuzz-mt940 build/fuzz-xlsx build/fuzz-xls build/fuzz-pdf
FUZZ_TARGETS += $(STATEMENT_FUZZ_TARGETS)

$(STATEMENT_FUZZ_TARGETS): build/fuzz-%: t/fuzz/fuzz_%.c t/fuzz/statement_fuzz.h $(STATEMENT_PARSERS) \
		$(wildcard parse/*.h) $(wildcard pg_recovery/*.h)
	@mkdir -p build
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Iparse -It/fuzz $(shell pkg-config --cflags $(STATEMENT_LIBS)) -o $@ $< \
		$(STATEMENT_PARSERS) $(shell pkg-config --libs $(STATEMENT_LIBS)) -lm

fuzz: $(FUZZ_TARGETS)
	@scripts/fuzz.sh $(FUZZ_SECONDS)

install: all
	$(MAKE) -C pg_recovery install

deps:
	@scripts/deps.sh

ifeq ($(HA),1)
run: deps install
	@scripts/cluster.sh stop $(RUN_DIR)
	@scripts/ha.sh start $(HA_DIR)
	@scripts/ha.sh psql $(HA_DIR) leader -q -v ON_ERROR_STOP=1 -f sql/demo.sql
	@scripts/ha.sh psql $(HA_DIR) leader -q -v ON_ERROR_STOP=1 -c 'SELECT recovery.schedule_jobs()' >/dev/null
	@scripts/nginx.sh stop $(NGINX_DIR)
	@REPLICAS=$$(scripts/ha.sh hosts $(HA_DIR)) scripts/nginx.sh start $(NGINX_DIR) $(NGINX_PORT) $$(scripts/ha.sh hosts $(HA_DIR)) $(TLS_PORT)
	@HA_DIR=$(HA_DIR) scripts/print-run-info.sh $(RUN_DIR) $(PG_PORT) $(NGINX_PORT) $(TLS_PORT)
else
run: deps install
	@scripts/ha.sh stop $(HA_DIR)
	@scripts/cluster.sh start $(RUN_DIR) $(PG_PORT)
	@scripts/cluster.sh psql $(RUN_DIR) -q -v ON_ERROR_STOP=1 -f sql/demo.sql
	@scripts/cluster.sh psql $(RUN_DIR) -q -v ON_ERROR_STOP=1 -c 'SELECT recovery.schedule_jobs()' >/dev/null
	@scripts/backup.sh initial $(RUN_DIR)
	@scripts/nginx.sh stop $(NGINX_DIR)
	@scripts/nginx.sh start $(NGINX_DIR) $(NGINX_PORT) $(PG_PORT) $(TLS_PORT)
	@scripts/print-run-info.sh $(RUN_DIR) $(PG_PORT) $(NGINX_PORT) $(TLS_PORT)
endif

stop:
	@scripts/nginx.sh stop $(NGINX_DIR)
	@scripts/cluster.sh stop $(RUN_DIR)
	@scripts/ha.sh stop $(HA_DIR)
	@echo "stopped nginx and PostgreSQL of $(RUN_DIR)"

TYPE ?= full
backup:
	@scripts/backup.sh backup $(RUN_DIR) $(TYPE)

restore:
	@if [ -n "$(LSN)" ]; then scripts/backup.sh restore $(RUN_DIR) lsn '$(LSN)'; \
	elif [ "$(TIME)" = latest ]; then scripts/backup.sh restore $(RUN_DIR) latest; \
	elif [ -n "$(TIME)" ]; then scripts/backup.sh restore $(RUN_DIR) time '$(TIME)'; \
	else echo "usage: make restore TIME='2026-12-04 10:15:00+00' | TIME=latest | LSN=0/5000060" >&2; exit 2; fi

test: deps install
	@scripts/test.sh

N ?= 10
soak: deps install
	@scripts/soak-tests.sh $(N)

bench: deps install
	@mkdir -p tmp && : > tmp/bench-results.tsv
	@BENCH_RESULTS=$(CURDIR)/tmp/bench-results.tsv bench/audit-overhead.sh
	@BENCH_RESULTS=$(CURDIR)/tmp/bench-results.tsv bench/gateway.sh
	@BENCH_RESULTS=$(CURDIR)/tmp/bench-results.tsv bench/reminders.sh
	@BENCH_RESULTS=$(CURDIR)/tmp/bench-results.tsv bench/extraction.sh
	@BENCH_RESULTS=$(CURDIR)/tmp/bench-results.tsv bench/backup.sh
	@BENCH_RESULTS=$(CURDIR)/tmp/bench-results.tsv bench/replicas.sh
	@BENCH_RESULTS=$(CURDIR)/tmp/bench-results.tsv bench/events.sh
	@BENCH_RESULTS=$(CURDIR)/tmp/bench-results.tsv bench/formats.sh
	@BENCH_RESULTS=$(CURDIR)/tmp/bench-results.tsv bench/pii.sh
	@bench/summary.sh tmp/bench-results.tsv

clean:
	$(MAKE) -C pg_recovery clean
	rm -rf build build-address
