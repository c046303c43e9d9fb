# stompgate - plain Makefile with pkg-config (redis / picohttpparser style).
#
#   make            build bin/stompgate and bin/stockd
#   make test       install deps, build, run unit + fuzz-smoke + integration tests
#   make run        install deps, build, start broker + stockd + stompgate
#   make asan       the same binaries with ASan+UBSan, in bin/asan/
#   make fuzz       libFuzzer targets (clang) in bin/fuzz/
#   make unit       only the cmocka unit tests
#   make bench      benchmarks against RabbitMQ's web_stomp (docs/BENCHMARKS.md)
#   make install    PREFIX=/usr/local DESTDIR=: binaries, units, configs, page, man pages
#   make gen-conf   regenerate dist/*.conf and the man pages' option lists from --help

VERSION  := 0.1.0
CC       ?= cc
PKGS     := librabbitmq libevent libevent_openssl libevent_pthreads openssl jansson uuid libsystemd
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WERROR   := $(if $(filter true,$(CI)),-Werror,)
OPT      ?= -O2 -g
CFLAGS   += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wshadow -Wno-unused-parameter $(WERROR) \
            $(OPT) -Iinclude $(PKG_CFLAGS) -DSG_VERSION=\"$(VERSION)\" -MMD -MP
LDLIBS   += $(PKG_LIBS) -lpthread -lm

# BUILD=asan puts objects and binaries in their own directories
ifeq ($(BUILD),asan)
  SAN    := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
  CFLAGS += $(SAN)
  LDFLAGS += $(SAN)
  OBJDIR := build/asan
  BINDIR := bin/asan
else
  OBJDIR := build/rel
  BINDIR := bin
endif

LIB_SRC  := $(filter-out src/main.c,$(wildcard src/*.c))
LIB_OBJ  := $(LIB_SRC:src/%.c=$(OBJDIR)/src/%.o)
LIB      := $(OBJDIR)/libsg.a
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BINDIR)/tests/%)
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_REPLAY := $(FUZZ_SRC:tests/fuzz/%.c=$(BINDIR)/tests/replay_%)
FUZZ_BIN := $(FUZZ_SRC:tests/fuzz/%.c=bin/fuzz/%)

.PHONY: all asan unit fuzz fuzz-smoke test test-unit test-integration run deps bench clean \
        format install check-format client-vendor-missing

all: $(BINDIR)/stompgate $(BINDIR)/stockd

# The ticker page's STOMP client: @stomp/stompjs's browser bundle (and its licence), copied
# from node_modules (scripts/deps.sh installs it from package-lock.json) into what
# stompgate serves. client/vendor/ is generated and git-ignored; no CDN.
STOMPJS      := node_modules/@stomp/stompjs
CLIENT_VENDOR := client/vendor/stomp.umd.min.js client/vendor/stompjs-LICENSE.txt
ifneq ($(wildcard $(STOMPJS)/bundles/stomp.umd.min.js),)
all: $(CLIENT_VENDOR)
else
all: client-vendor-missing
endif
# the lockfile is a prerequisite too, so an upgrade recopies whatever mtimes npm gave the files
client/vendor/stomp.umd.min.js: $(STOMPJS)/bundles/stomp.umd.min.js package-lock.json
	@mkdir -p $(dir $@)
	cp $< $@
client/vendor/stompjs-LICENSE.txt: $(STOMPJS)/LICENSE package-lock.json
	@mkdir -p $(dir $@)
	cp $< $@
client-vendor-missing:
	@echo "warning: $(STOMPJS) is not installed (make deps): the ticker page has no STOMP client" >&2

$(OBJDIR)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BINDIR)/stompgate: $(OBJDIR)/src/main.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# stockd's own modules (daemon/*.c but its main), also linked into their unit tests
STOCKD_OBJ := $(patsubst %.c,$(OBJDIR)/%.o,$(filter-out daemon/stockd.c,$(wildcard daemon/*.c)))

$(BINDIR)/stockd: $(OBJDIR)/daemon/stockd.o $(STOCKD_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(OBJDIR)/daemon/%.o: CFLAGS += -Idaemon
$(OBJDIR)/tests/unit/test_quotes.o: CFLAGS += -Idaemon
$(BINDIR)/tests/test_quotes: $(OBJDIR)/daemon/quotes.o
# tests/unit/test_stockd_*.c: stockd's modules (work, sources, replay), linked whole
STOCKD_TESTS := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_stockd_*.c))
$(STOCKD_TESTS:%=$(OBJDIR)/tests/unit/%.o): CFLAGS += -Idaemon
$(STOCKD_TESTS:%=$(BINDIR)/tests/%): $(BINDIR)/tests/%: $(OBJDIR)/tests/unit/%.o $(STOCKD_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# objects first, the archive last (an extra object such as test_quotes' daemon/quotes.o
# may use the archive too)
$(BINDIR)/tests/test_%: $(OBJDIR)/tests/unit/test_%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIB) $(LDLIBS) -lcmocka

# test_relay runs the relay against tests/unit/fake_link.c, a scripted broker
# that defines every function of amqp_link.h. It is linked ahead of the
# archive, so amqp_link.o is never pulled from libsg.a (were anything to pull
# it, its definitions would clash with the fake's and the link would fail).
RELAY_OBJ := $(addprefix $(OBJDIR)/src/,relay.o relay_publish.o relay_sub.o relay_fanout.o \
                                       relay_ticker.o)
$(BINDIR)/tests/test_relay: $(OBJDIR)/tests/unit/fake_link.o $(OBJDIR)/tests/unit/test_relay.o \
                            $(RELAY_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# fuzz targets built with gcc and a replay main: run over the seed corpus in make test
$(BINDIR)/tests/replay_%: $(OBJDIR)/tests/fuzz/%.o $(OBJDIR)/tests/fuzz/replay_main.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# fuzz_stockd_json: stockd's parsers (daemon/work.c, daemon/replay.c) are not in libsg.a
$(OBJDIR)/tests/fuzz/fuzz_stockd_json.o: CFLAGS += -Idaemon
$(BINDIR)/tests/replay_fuzz_stockd_json: $(OBJDIR)/tests/fuzz/fuzz_stockd_json.o \
                                         $(OBJDIR)/tests/fuzz/replay_main.o $(STOCKD_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

asan:
	$(MAKE) BUILD=asan all unit

unit: $(UNIT_BIN)

# libFuzzer builds (clang): make fuzz; run e.g. bin/fuzz/fuzz_ws_frame tests/fuzz/corpus/ws_frame
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude $(PKG_CFLAGS) -DSG_VERSION=\"$(VERSION)\" \
               -fsanitize=fuzzer,address,undefined
fuzz: $(FUZZ_BIN)
bin/fuzz/%: tests/fuzz/%.c $(LIB_SRC)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $< $(LIB_SRC) $(PKG_LIBS) -lpthread -lm
bin/fuzz/fuzz_stockd_json: tests/fuzz/fuzz_stockd_json.c daemon/work.c daemon/replay.c $(LIB_SRC)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -Idaemon -o $@ $< daemon/work.c daemon/replay.c $(LIB_SRC) $(PKG_LIBS) \
	    -lpthread -lm

deps:
	@bash scripts/deps.sh

test: deps
	@bash scripts/test.sh

test-unit: check-format $(UNIT_BIN) $(FUZZ_REPLAY)
	@bash scripts/unit.sh $(BINDIR)

run: deps
	@$(MAKE) --no-print-directory all
	@bash scripts/run.sh

bench: deps
	@$(MAKE) --no-print-directory all
	@bash bench/run.sh

format:
	clang-format -i src/*.c include/*.h daemon/*.c daemon/*.h tests/unit/*.c tests/fuzz/*.c

check-format:
	@clang-format --dry-run --Werror src/*.c include/*.h daemon/*.c daemon/*.h tests/unit/*.c \
	    tests/fuzz/*.c \
	    && echo "format: clean (.clang-format)"

# make install / uninstall: PREFIX (default /usr/local) and DESTDIR as usual; the layout
# (binaries, units, sysusers.d, /etc/stompgate configs never overwritten, page, man pages,
# docs) is described in scripts/install.sh and docs/OPERATIONS.md.
PREFIX      ?= /usr/local
SYSCONFDIR  ?= /etc
UNITDIR     ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
MANDIR      ?= $(PREFIX)/share/man
INSTALL_ENV  = DESTDIR='$(DESTDIR)' PREFIX='$(PREFIX)' SYSCONFDIR='$(SYSCONFDIR)' \
               UNITDIR='$(UNITDIR)' SYSUSERSDIR='$(SYSUSERSDIR)' MANDIR='$(MANDIR)' \
               SRC_BIN='$(BINDIR)'
.PHONY: uninstall gen-conf
install: all
	@$(INSTALL_ENV) bash scripts/install.sh install
uninstall:
	@$(INSTALL_ENV) bash scripts/install.sh uninstall

# dist/*.conf and the option lists of man/* from --help (after adding an option)
gen-conf: all
	@SG_BIN_DIR=$(BINDIR) bash scripts/gen-conf.sh

clean:
	rm -rf build bin client/vendor

-include $(shell find build -name '*.d' 2>/dev/null)
