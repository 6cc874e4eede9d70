# Makefile for the consistency extension (PGXS).
#
# Suites are discovered from their directories, so adding a test is adding a file:
#   sql/*.sql            pg_regress        (make installcheck-regress)
#   test/specs/*.spec    isolation         (make installcheck-isolation)
#   test/t/*.pl          Perl TAP          (make installcheck-tap)
#   test/pgtap/*.sql     pgTAP, pg_prove   (make installcheck-pgtap)
# scripts/test.sh runs all four on throwaway servers; plain `make installcheck` runs
# regress + isolation + TAP against the server in PG* environment variables.

EXTENSION   = consistency
MODULE_big  = consistency
OBJS        = $(patsubst %.c,%.o,$(sort $(wildcard src/*.c)))
DATA        = $(sort $(wildcard consistency--*.sql))
PGFILEDESC  = "consistency - idempotency, versioning, reservations, LSN tokens, 2PC helpers"

REGRESS       = $(patsubst sql/%.sql,%,$(sort $(wildcard sql/*.sql)))
REGRESS_OPTS  = --load-extension=consistency
ISOLATION     = $(patsubst test/specs/%.spec,%,$(sort $(wildcard test/specs/*.spec)))
ISOLATION_OPTS = --inputdir=test --load-extension=consistency
TAP_TESTS     = 1
PROVE_TESTS   = $(sort $(wildcard test/t/*.pl))
PROVE_FLAGS   = -I $(CURDIR)/test/t

EXTRA_CLEAN = results regression.diffs regression.out output_iso tmp_check tmp_check_iso log

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)

# Warnings are errors: PGXS already passes -Wall and friends; add what it lacks.
WERROR ?= -Werror
PG_CFLAGS += -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare $(WERROR)
PG_CPPFLAGS += -I$(srcdir)/src

include $(PGXS)

.PHONY: installcheck-regress installcheck-isolation installcheck-tap installcheck-pgtap

installcheck-regress:
	$(pg_regress_installcheck) $(REGRESS_OPTS) $(REGRESS)

installcheck-isolation:
	$(pg_isolation_regress_installcheck) $(ISOLATION_OPTS) $(ISOLATION)

installcheck-tap:
	$(prove_installcheck)

# pgTAP needs a server with pgtap installed; scripts/lib/run-pgtap.sh makes one.
installcheck-pgtap:
	$(srcdir)/scripts/lib/run-pgtap.sh

# ---- pg_consistency: the DBA command-line tool for in-doubt 2PC (src/cli/, libpq) ----------
# Built with `make`, installed into PostgreSQL's bindir with `make install`.
PG_CONSISTENCY_PROG = src/cli/pg_consistency
PG_CONSISTENCY_INCLUDEDIR := $(shell $(PG_CONFIG) --includedir)
PG_CONSISTENCY_LIBDIR := $(shell $(PG_CONFIG) --libdir)

all: $(PG_CONSISTENCY_PROG)

$(PG_CONSISTENCY_PROG): src/cli/pg_consistency.c
	$(CC) $(CFLAGS) -Wextra $(WERROR) -I$(PG_CONSISTENCY_INCLUDEDIR) -o $@ $< \
		-L$(PG_CONSISTENCY_LIBDIR) -lpq $(LDFLAGS)

install: install-pg-consistency
.PHONY: install-pg-consistency
install-pg-consistency: $(PG_CONSISTENCY_PROG)
	$(MKDIR_P) '$(DESTDIR)$(bindir)'
	$(INSTALL_PROGRAM) $(PG_CONSISTENCY_PROG) '$(DESTDIR)$(bindir)/pg_consistency'

clean: clean-pg-consistency
.PHONY: clean-pg-consistency
clean-pg-consistency:
	rm -f $(PG_CONSISTENCY_PROG)
# ---- end of pg_consistency ------------------------------------------------------------------
