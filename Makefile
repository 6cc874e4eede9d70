# Makefile for the consistency extension (PGXS).
#
# Suites are discovered from their directories, so adding a test is adding a file:
#   sql/*.sql            pg_regress        (make installcheck-regress)
#   test/specs/*.spec    isolation         (make installcheck-isolation)
#   test/t/*.pl          Perl TAP          (make installcheck-tap)
#   test/pgtap/*.sql     pgTAP, pg_prove   (make installcheck-pgtap)
# scripts/test.sh runs all four on throwaway servers, once without and once with the library
# in shared_preload_libraries (scripts/lib/run-suites.sh, test/preload.conf); plain `make
# installcheck` runs regress + isolation + TAP against the server in PG* environment variables.
# test/t/050_upgrade_from_1_0.pl also runs the regress files, on databases upgraded from 1.0.
# PROVE_TESTS="test/t/073_x.pl ..." in the environment runs only those TAP files.

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
PROVE_TESTS   ?= $(sort $(wildcard test/t/*.pl))

EXTRA_CLEAN = results regression.diffs regression.out output_iso tmp_check tmp_check_iso log

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)

# Warnings are errors: PGXS already passes -Wall and friends; add what it lacks.
WERROR ?= -Werror
PG_CFLAGS += -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -Wno-sign-compare $(WERROR)
PG_CPPFLAGS += -I$(srcdir)/src

include $(PGXS)

# After the include: Makefile.global resets PROVE_FLAGS.  test/t holds the TAP tests' own
# module (ConsistencyCluster.pm), test/ha the Patroni suite's (PatroniCluster.pm; its tests
# run through scripts/lib/run-suites.sh's ha suite, with PROVE_TESTS set to test/ha/*.pl).
PROVE_FLAGS = -I $(CURDIR)/test/t -I $(CURDIR)/test/ha
# The TAP tests run programs of the build tree (test/router_example) from $TESTDIR, which
# PGXS sets itself only before PostgreSQL 16.
export TESTDIR ?= $(CURDIR)

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

# ---- Session LSN tokens: the read-your-writes router client library and its example ----
# src/client/libconsistency_router.{a,so} on libpq, installed with its header into the
# PostgreSQL lib and include directories; test/router_example links it statically (the TAP
# tests and the demo run it from the build tree).  The shared library has a versioned
# SONAME (libconsistency_router.so.0, bumped on an ABI break) with the usual .so symlink
# for linking, as Debian packages a library (debian/: libconsistency-router0 and -dev).
# The client programs also get PGXS's CPPFLAGS and LDFLAGS (pg_config's: on Debian the
# hardening flags, -D_FORTIFY_SOURCE and -z now, that lintian checks the packages for).
ROUTER_CPPFLAGS = -I$(srcdir)/src/client -I$(shell $(PG_CONFIG) --includedir) $(CPPFLAGS)
ROUTER_CFLAGS   = -g -O2 -fPIC -Wall -Wextra $(WERROR)
ROUTER_LIBPQ    = -L$(shell $(PG_CONFIG) --libdir) -lpq
ROUTER_SONAME   = libconsistency_router.so.0
ROUTER_LIBS     = src/client/libconsistency_router.a src/client/$(ROUTER_SONAME) \
				  src/client/libconsistency_router.so
ROUTER_PROGRAMS = test/router_example

all: $(ROUTER_LIBS) $(ROUTER_PROGRAMS)

src/client/consistency_router.lo: src/client/consistency_router.c src/client/consistency_router.h
	$(CC) $(ROUTER_CFLAGS) $(ROUTER_CPPFLAGS) -c -o $@ $<

src/client/libconsistency_router.a: src/client/consistency_router.lo
	$(AR) crs $@ $^

src/client/$(ROUTER_SONAME): src/client/consistency_router.lo
	$(CC) -shared -Wl,-soname,$(ROUTER_SONAME) -o $@ $^ $(ROUTER_LIBPQ) $(LDFLAGS)

src/client/libconsistency_router.so: src/client/$(ROUTER_SONAME)
	ln -sf $(ROUTER_SONAME) $@

test/router_example: test/router_example.c src/client/libconsistency_router.a
	$(CC) $(ROUTER_CFLAGS) $(ROUTER_CPPFLAGS) -o $@ $< src/client/libconsistency_router.a $(ROUTER_LIBPQ) $(LDFLAGS)

install: install-router
.PHONY: install-router
install-router: $(ROUTER_LIBS)
	$(MKDIR_P) '$(DESTDIR)$(libdir)' '$(DESTDIR)$(includedir)'
	$(INSTALL_DATA) src/client/libconsistency_router.a src/client/$(ROUTER_SONAME) '$(DESTDIR)$(libdir)/'
	ln -sf $(ROUTER_SONAME) '$(DESTDIR)$(libdir)/libconsistency_router.so'
	$(INSTALL_DATA) $(srcdir)/src/client/consistency_router.h '$(DESTDIR)$(includedir)/'

EXTRA_CLEAN += src/client/*.lo $(ROUTER_LIBS) $(ROUTER_PROGRAMS)
# ---- end of session LSN tokens ----

# ---- pg_consistency: the DBA command-line tool for in-doubt 2PC (src/cli/, libpq) ----------
# Built with `make`, installed into PostgreSQL's bindir with `make install`.
PG_CONSISTENCY_PROG = src/cli/pg_consistency
PG_CONSISTENCY_INCLUDEDIR := $(shell $(PG_CONFIG) --includedir)
PG_CONSISTENCY_LIBDIR := $(shell $(PG_CONFIG) --libdir)

all: $(PG_CONSISTENCY_PROG)

$(PG_CONSISTENCY_PROG): src/cli/pg_consistency.c
	$(CC) $(CFLAGS) -Wextra $(WERROR) -I$(PG_CONSISTENCY_INCLUDEDIR) $(CPPFLAGS) -o $@ $< \
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
