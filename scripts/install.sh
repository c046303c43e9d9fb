#!/usr/bin/env bash
# `make install` and `make uninstall`; the Makefile passes its variables in the
# environment. Everything is written under $DESTDIR; the paths inside the files (the
# units' ExecStart, the installed config's client_dir, the man pages' FILES) name the
# final place, without DESTDIR.
#
#   scripts/install.sh install | uninstall
#
#   PREFIX/bin/stompgate, PREFIX/bin/stockd             PREFIX      default /usr/local
#   UNITDIR/stompgate.service, stockd.service           UNITDIR     PREFIX/lib/systemd/system
#   SYSUSERSDIR/stompgate.conf (the stompgate user)     SYSUSERSDIR PREFIX/lib/sysusers.d
#   SYSCONFDIR/stompgate/stompgate.conf, stockd.conf    SYSCONFDIR  /etc (whatever PREFIX)
#       written only when absent (0640); NAME.conf.dist beside them, always (0644)
#   DATADIR/client/ (the ticker page)                   DATADIR     PREFIX/share/stompgate
#   MANDIR/man8/stompgate.8, stockd.8, man5/stompgate.conf.5   MANDIR PREFIX/share/man
#   DOCDIR/OPERATIONS.md, SECURITY.md, CONFIG.md, PROTOCOL.md, METRICS.md
#                                                             DOCDIR PREFIX/share/doc/stompgate
#
# A live install (DESTDIR empty, run as root) also creates the stompgate user with
# systemd-sysusers, gives the new configs to its group, and runs `systemctl
# daemon-reload` when systemd is running; it does not enable or start the units.
# Uninstall removes all of the above except a config that differs from its .conf.dist
# (and the user); a live uninstall first disables and stops the units.
set -euo pipefail
cd "$(dirname "$0")/.."

D=${DESTDIR:-}
PREFIX=${PREFIX:-/usr/local}
SYSCONFDIR=${SYSCONFDIR:-/etc}
UNITDIR=${UNITDIR:-$PREFIX/lib/systemd/system}
SYSUSERSDIR=${SYSUSERSDIR:-$PREFIX/lib/sysusers.d}
DATADIR=${DATADIR:-$PREFIX/share/stompgate}
MANDIR=${MANDIR:-$PREFIX/share/man}
DOCDIR=${DOCDIR:-$PREFIX/share/doc/stompgate}
SRC_BIN=${SRC_BIN:-bin}

PROGS=(stompgate stockd)
UNITS=(stompgate.service stockd.service)
MAN8=(stompgate.8 stockd.8)
MAN5=(stompgate.conf.5)
DOCS=(OPERATIONS.md SECURITY.md CONFIG.md PROTOCOL.md METRICS.md)
CONFDIR=$SYSCONFDIR/stompgate
USER_=stompgate

for v in PREFIX SYSCONFDIR UNITDIR SYSUSERSDIR DATADIR MANDIR DOCDIR; do
    case ${!v} in /*) ;; *) echo "install: $v must be an absolute path (got '${!v}')" >&2; exit 2 ;; esac
done

live=0
if [ -z "$D" ] && [ "$(id -u)" = 0 ]; then live=1; fi
systemd_up() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null; }

work=$(mktemp -d "${TMPDIR:-/tmp}/sg-install.XXXXXX")
trap 'rm -rf "$work"' EXIT

# the shipped files name /usr/local and /etc: point them at this layout
relocate() { # relocate SRC: SRC with the final paths, on stdout
    sed -e "s|/usr/local/lib/systemd/system|$UNITDIR|g" \
        -e "s|/usr/local/share/stompgate|$DATADIR|g" \
        -e "s|/usr/local/|$PREFIX/|g" \
        -e "s|/etc/stompgate|$CONFDIR|g" "$1"
}

# default_conf NAME: the config as installed (stompgate's client_dir is the installed page)
default_conf() {
    if [ "$1" = stompgate ]; then
        sed -e "s|^# client_dir = .*|client_dir = $DATADIR/client|" dist/stompgate.conf
    else
        cat "dist/$1.conf"
    fi
}

put() { # put MODE SRC DEST: install SRC as DEST (its directory created), and say so
    install -D -m "$1" "$2" "$D$3"
    echo "install: $3"
}

do_install() {
    local f n
    for n in "${PROGS[@]}"; do
        [ -x "$SRC_BIN/$n" ] || { echo "install: $SRC_BIN/$n is not built (make all)" >&2; exit 1; }
        put 755 "$SRC_BIN/$n" "$PREFIX/bin/$n"
    done
    for f in "${UNITS[@]}"; do
        relocate "dist/systemd/$f" >"$work/$f"
        put 644 "$work/$f" "$UNITDIR/$f"
    done
    put 644 dist/sysusers.d/stompgate.conf "$SYSUSERSDIR/stompgate.conf"
    for f in "${MAN8[@]}"; do
        relocate "man/$f" >"$work/$f"
        put 644 "$work/$f" "$MANDIR/man8/$f"
    done
    for f in "${MAN5[@]}"; do
        relocate "man/$f" >"$work/$f"
        put 644 "$work/$f" "$MANDIR/man5/$f"
    done
    for f in "${DOCS[@]}"; do put 644 "docs/$f" "$DOCDIR/$f"; done

    # the page: replaced as a whole, so nothing of an older version lingers
    rm -rf "$D$DATADIR/client"
    install -d -m 755 "$D$DATADIR/client"
    cp -R client/. "$D$DATADIR/client/"
    chmod -R u=rwX,go=rX "$D$DATADIR/client"
    echo "install: $DATADIR/client/"

    # the user first, so that a live install can give the new configs to its group
    local group=
    if [ $live = 1 ]; then
        if command -v systemd-sysusers >/dev/null; then
            systemd-sysusers "$SYSUSERSDIR/stompgate.conf"
        fi
        if getent group "$USER_" >/dev/null; then group=$USER_; fi
        [ -n "$group" ] || echo "install: no group $USER_: the configs stay root's (chgrp them)" >&2
    fi
    install -d -m 755 "$D$CONFDIR"
    for n in "${PROGS[@]}"; do
        default_conf "$n" >"$work/$n.conf"
        put 644 "$work/$n.conf" "$CONFDIR/$n.conf.dist"
        if [ -e "$D$CONFDIR/$n.conf" ]; then
            echo "install: kept $CONFDIR/$n.conf (the new defaults are in $n.conf.dist)"
        else
            put 640 "$work/$n.conf" "$CONFDIR/$n.conf"
            if [ -n "$group" ]; then chgrp "$group" "$D$CONFDIR/$n.conf"; fi
        fi
    done

    if [ $live = 1 ] && systemd_up; then systemctl daemon-reload; fi
    if [ -z "$D" ]; then
        echo "install: done; start with: systemctl enable --now stockd stompgate"
    fi
}

gone() { # gone PATH: remove PATH (under DESTDIR) if it is there, and say so
    if [ -e "$D$1" ] || [ -L "$D$1" ]; then
        rm -rf -- "$D$1"
        echo "uninstall: $1"
    fi
}

do_uninstall() {
    local f n
    if [ $live = 1 ] && systemd_up; then
        systemctl disable --now "${UNITS[@]}" 2>/dev/null || true
    fi
    for n in "${PROGS[@]}"; do gone "$PREFIX/bin/$n"; done
    for f in "${UNITS[@]}"; do gone "$UNITDIR/$f"; done
    gone "$SYSUSERSDIR/stompgate.conf"
    for f in "${MAN8[@]}"; do gone "$MANDIR/man8/$f"; done
    for f in "${MAN5[@]}"; do gone "$MANDIR/man5/$f"; done
    for f in "${DOCS[@]}"; do gone "$DOCDIR/$f"; done
    rmdir "$D$DOCDIR" 2>/dev/null || true
    gone "$DATADIR/client"
    rmdir "$D$DATADIR" 2>/dev/null || true
    for n in "${PROGS[@]}"; do
        local conf=$D$CONFDIR/$n.conf ref=$D$CONFDIR/$n.conf.dist
        if [ ! -f "$ref" ]; then
            default_conf "$n" >"$work/$n.conf"
            ref=$work/$n.conf
        fi
        if [ -f "$conf" ]; then
            if cmp -s "$conf" "$ref"; then
                gone "$CONFDIR/$n.conf"
            else
                echo "uninstall: kept $CONFDIR/$n.conf (changed locally)"
            fi
        fi
        gone "$CONFDIR/$n.conf.dist"
    done
    rmdir "$D$CONFDIR" 2>/dev/null || true
    if [ $live = 1 ] && systemd_up; then systemctl daemon-reload; fi
    if [ $live = 1 ] && getent passwd "$USER_" >/dev/null; then
        echo "uninstall: the user $USER_ stays (userdel $USER_ to remove it)"
    fi
}

case ${1:-} in
install) do_install ;;
uninstall) do_uninstall ;;
*) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
