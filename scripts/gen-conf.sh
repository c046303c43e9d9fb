#!/usr/bin/env bash
# Writes what is generated from `stompgate --help` and `stockd --help`, so that the
# option table in the code stays the only list of options:
#   dist/stompgate.conf, dist/stockd.conf   every option commented out, with its default
#   man/stompgate.8, man/stockd.8           the --KEY=VALUE list (OPTIONS)
#   man/stompgate.conf.5                    the keys of both files
# In the man pages only the lines between '.\" BEGIN GENERATED: STYLE PROG' and
# '.\" END GENERATED: STYLE PROG' are rewritten; the prose around them is kept by hand.
#
#   scripts/gen-conf.sh           rewrite the files (after adding or changing an option)
#   scripts/gen-conf.sh --check   write nothing; print a diff and exit 1 if one is stale
#
# Environment: SG_BIN_DIR  where the built binaries are (default bin, relative to the repo)
#              SG_GEN_ROOT the tree whose dist/ and man/ are read and written (default the repo)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root=${SG_GEN_ROOT:-$repo}
bindir=${SG_BIN_DIR:-bin}
case $bindir in /*) ;; *) bindir=$repo/$bindir ;; esac

die() { echo "gen-conf: $*" >&2; exit 1; }

check=0
case ${1:-} in
'') ;;
--check) check=1 ;;
*) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

# parse_help BINARY: one line "key<TAB>description<TAB>default" per option of --help.
# An option is "  key   description [default: value]"; a line indented deeper
# continues the one before it.
parse_help() {
    "$1" --help | awk '
        function flush(   d) {
            if (key == "") return
            d = ""
            if (match(text, / *\[default: .*\]$/)) {
                d = substr(text, RSTART, RLENGTH)
                sub(/^ *\[default: /, "", d)
                sub(/\]$/, "", d)
                text = substr(text, 1, RSTART - 1)
            }
            print key "\t" text "\t" d
            key = ""
        }
        /^Options/ { opts = 1; next }
        !opts { next }
        /^  [a-z][a-z0-9_]*  +[^ ]/ {
            flush()
            key = $1
            text = $0
            sub(/^  [a-z][a-z0-9_]* +/, "", text)
            next
        }
        /^    +[^ ]/ && key != "" { sub(/^ +/, " "); text = text $0; next }
        { flush() }
        END { flush() }'
}

# conf_file PROG ENV_PREFIX < records: the commented default configuration
conf_file() {
    local prog=$1 env=$2 key desc def
    cat <<EOF
# /etc/stompgate/$prog.conf - $prog(8) configuration; the format is in stompgate.conf(5).
# Every option is here, commented out, with its default (from \`$prog --help\`, by
# scripts/gen-conf.sh). Uncomment a line to change it: one "key = value" per line, sizes
# take K, M and G, durations are milliseconds. ${env}<KEY> in the environment and
# --key=value flags override this file (docs/CONFIG.md).
# This file may hold broker_password: keep it mode 0640, owner root, group stompgate.
EOF
    while IFS=$'\t' read -r key desc def; do
        echo
        printf '%s\n' "$desc" | fold -s -w 86 | sed -e 's/ *$//' -e 's/^/# /'
        if [ -n "$def" ]; then echo "# $key = $def"; else echo "# $key ="; fi
    done
}

# roff TEXT: TEXT safe on a roff text line (backslashes, a leading . or ')
roff() { printf '%s\n' "$1" | sed -e 's/\\/\\e/g' -e "s/^[.']/\\\\\\&&/"; }
# roff_lit TEXT: a literal value: also keep the hyphens minus signs, and let a long list
# break after its separators (\: is an invisible break point)
roff_lit() { roff "$1" | sed -e 's/-/\\-/g' -e 's/[:,]/&\\:/g'; }

# man_block STYLE PROG ENV_PREFIX < records: keys (stompgate.conf(5)) or flags (PROG(8))
man_block() {
    local style=$1 env=$3 key desc def
    while IFS=$'\t' read -r key desc def; do
        echo ".TP"
        if [ "$style" = keys ]; then
            echo ".B $key"
        else
            printf '\\fB\\-\\-%s\\fR=\\fIvalue\\fR, \\fB%s%s\\fR\n' "$key" "$env" "${key^^}"
        fi
        desc=$(roff "$desc")
        case $desc in *.) ;; *) desc="$desc." ;; esac
        printf '%s\n' "$desc"
        echo ".br"
        if [ -n "$def" ]; then
            printf 'Default: \\fB%s\\fR.\n' "$(roff_lit "$def")"
        else
            echo "Default: empty."
        fi
    done
}

# splice FILE DIR VERSION: replace each generated block of FILE by DIR/STYLE.PROG, and
# the version in its .TH line by VERSION
splice() {
    local file=$1 dir=$2 out
    out=$(awk -v dir="$dir" -v ver="$3" '
        /^\.TH / { sub(/"stompgate [^"]*"/, "\"stompgate " ver "\"") }
        /^\.\\" BEGIN GENERATED: / {
            print
            gen = dir "/" $4 "." $5
            if ((getline line < gen) <= 0) { print "no generated block " $4 " " $5 > "/dev/stderr"; exit 3 }
            do print line; while ((getline line < gen) > 0)
            close(gen)
            skip = $4 " " $5
            next
        }
        /^\.\\" END GENERATED: / {
            if (skip != $4 " " $5) { print "END without BEGIN: " $0 > "/dev/stderr"; exit 3 }
            skip = ""
        }
        skip == "" { print }
        END { if (skip != "") { print "BEGIN GENERATED " skip " has no END" > "/dev/stderr"; exit 3 } }
    ' "$file") || die "$file: bad generated block markers"
    printf '%s\n' "$out" >"$file.tmp"
    mv -f "$file.tmp" "$file"
}

work=$(mktemp -d "${TMPDIR:-/tmp}/gen-conf.XXXXXX")
trap 'rm -rf "$work"' EXIT

for p in stompgate:STOMPGATE_ stockd:STOCKD_; do
    prog=${p%%:*} env=${p#*:}
    [ -x "$bindir/$prog" ] || die "$bindir/$prog is not built (make all)"
    parse_help "$bindir/$prog" >"$work/$prog.tsv"
    n=$(wc -l <"$work/$prog.tsv")
    [ "$n" -ge 5 ] || die "only $n options parsed from $prog --help: has its format changed?"
    conf_file "$prog" "$env" <"$work/$prog.tsv" >"$work/$prog.conf"
    man_block keys "$prog" "$env" <"$work/$prog.tsv" >"$work/keys.$prog"
    man_block flags "$prog" "$env" <"$work/$prog.tsv" >"$work/flags.$prog"
done

version=$("$bindir/stompgate" --version | awk '{ print $2 }')
[ -n "$version" ] || die "no version from $bindir/stompgate --version"
mkdir -p "$work/out/dist" "$work/out/man"
cp "$work/stompgate.conf" "$work/stockd.conf" "$work/out/dist/"
for m in stompgate.8 stockd.8 stompgate.conf.5; do
    [ -f "$root/man/$m" ] || die "$root/man/$m is missing"
    cp "$root/man/$m" "$work/out/man/$m"
    splice "$work/out/man/$m" "$work" "$version"
done

files=(dist/stompgate.conf dist/stockd.conf man/stompgate.8 man/stockd.8 man/stompgate.conf.5)
if [ $check = 1 ]; then
    stale=()
    for f in "${files[@]}"; do
        if ! diff -u --label "$f (in the tree)" --label "$f (generated)" \
            "$root/$f" "$work/out/$f" 2>/dev/null; then
            [ -f "$root/$f" ] || echo "gen-conf: $f is missing"
            stale+=("$f")
        fi
    done
    if [ ${#stale[@]} -gt 0 ]; then
        echo "gen-conf: stale: ${stale[*]} (run scripts/gen-conf.sh)"
        exit 1
    fi
    echo "gen-conf: ${#files[@]} files up to date"
else
    for f in "${files[@]}"; do
        if ! cmp -s "$work/out/$f" "$root/$f"; then
            cp "$work/out/$f" "$root/$f"
            echo "gen-conf: wrote $f"
        fi
    done
fi
