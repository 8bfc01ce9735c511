#!/usr/bin/env bash
# test/corpora/run.sh -- codevec-load takes real corpora whole (issue 22).
#
# Loads large real trees that Debian installs into a database with
# --no-embed, each as its own repository:
#   python-stdlib  /usr/lib/python3.11 (libpython3.11-stdlib)
#   python-tests   CPython's own test suite (libpython3.11-testsuite, unpacked
#                  from its .deb into $CVL_CORPORA_DIR, not installed, so the
#                  stdlib other suites load stays as it is): files declaring
#                  Latin-1 and KOI8-R, a UTF-8 BOM, invalid bytes, bad cookies
#   dist-packages  /usr/lib/python3/dist-packages (whatever is installed)
#   go             /usr/share/go-1.19/src (golang-1.19-src)
#   rust           /usr/share/cargo/registry (a handful of librust-*-dev crates)
#   node           /usr/share/nodejs (node-lodash, node-acorn, node-esprima, ...)
#   linux          kernel/ lib/ fs/ net/ drivers/{net,usb,tty}/ of
#                  linux-source-6.1, unpacked once into $CVL_CORPORA_DIR
#   hfh            huggingface_hub 1.33.0 from PyPI (the issue's repro)
# and checks for each: no abort (exit 0, or 1 with its reasons named); every
# skip explained (the reasons add up to "skipped", the files seen to parsed +
# unchanged + skipped, and "seen" equals an independent count of the tree
# with find); code.files holds every parsed file; a sample of code.snippets
# (2,000 per corpus) is the exact text of its lines as Python reads the
# file (test/loader/textref.py: codecs, tokenize; test/loader/textcheck.py),
# and every file the loader kept decodes in Python too, every encoding
# skip is one Python makes; a second load finds every file unchanged.
#
# Needs: the loader built (make -C loaders), the PG* variables naming a
# server where the user may create databases (the codevec extension is
# used when installed, else --dims 0), and root (or sudo) to install the
# packages above.  Prints TAP-like lines and "N passed, N failed"; the
# exit status is non-zero on failure.  Timings are printed as "# time".
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LOADER=${LOADER:-$ROOT/loaders/codevec-load}
CHECK=$ROOT/test/loader/textcheck.py
WORK=${CVL_CORPORA_DIR:-/var/tmp/cvl-corpora}
SAMPLE=${CVL_CORPORA_SAMPLE:-2000}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cvl-corpora.XXXXXX")
PASS=0
FAIL=0
N=0
TESTDB=
cleanup() {
    [ -n "$TESTDB" ] && psql -X -q -d "${MAINTDB:-postgres}" -c "DROP DATABASE IF EXISTS $TESTDB" >/dev/null 2>&1
    rm -rf "$TMP"
}
trap cleanup EXIT

source "$ROOT/test/tap.sh"	# ok, is, like, skip, finish

if [ ! -x "$LOADER" ]; then
    ok 1 "codevec-load is built ($LOADER missing: make -C loaders)"
    finish
fi

# ---------------------------------------------------------------- packages
t0=$(date +%s)
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
PACKAGES="libpython3.11-stdlib golang-1.19-src linux-source-6.1 xz-utils
  librust-regex-dev librust-syn-dev librust-encoding-rs-dev librust-serde-dev
  librust-unicode-normalization-dev librust-aho-corasick-dev
  node-lodash node-acorn node-esprima node-iconv-lite python3-pip"
missing=$(for p in $PACKAGES; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || echo "$p"; done)
if [ -n "$missing" ]; then
    if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages' -mtime -1 2>/dev/null | head -1)" ]; then
        DEBIAN_FRONTEND=noninteractive $sudo apt-get update -q > "$TMP/apt.log" 2>&1
    fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $missing >> "$TMP/apt.log" 2>&1
    ok $? "corpus packages installed ($(echo $missing | wc -w) missing ones)"
    [ $? ] && tail -3 "$TMP/apt.log" | sed 's/^/#   /'
else
    ok 0 "corpus packages installed (all there)"
fi
# the kernel: a subset of Debian's linux-source-6.1, unpacked once
LINUX=$WORK/linux-source-6.1
LINUX_DIRS="kernel lib fs net drivers/net drivers/usb drivers/tty"
if [ ! -f "$LINUX/.cvl-unpacked" ] && [ -f /usr/src/linux-source-6.1.tar.xz ]; then
    mkdir -p "$WORK"
    rm -rf "$LINUX"
    tar -xJf /usr/src/linux-source-6.1.tar.xz -C "$WORK" \
        $(for d in $LINUX_DIRS; do echo "linux-source-6.1/$d"; done) && touch "$LINUX/.cvl-unpacked"
fi
# CPython's test suite, from its .deb (apt-get download; not installed)
PYTESTS=$WORK/python-tests/usr/lib/python3.11/test
if [ ! -f "$PYTESTS/test_source_encoding.py" ]; then
    mkdir -p "$WORK/python-tests"
    (cd "$WORK" && rm -f libpython3.11-testsuite_*.deb && apt-get download -q libpython3.11-testsuite >/dev/null 2>&1 &&
        dpkg-deb -x libpython3.11-testsuite_*.deb "$WORK/python-tests" && rm -f libpython3.11-testsuite_*.deb)
fi
# the issue's repro: huggingface_hub 1.33.0 from PyPI
HFH=$WORK/hfh
if [ ! -d "$HFH/huggingface_hub" ]; then
    mkdir -p "$HFH"
    (cd "$HFH" && python3 -m pip download -q --no-deps huggingface_hub==1.33.0 >/dev/null 2>&1 &&
        python3 -m zipfile -e huggingface_hub-1.33.0-py3-none-any.whl . >/dev/null 2>&1)
fi
echo "# time: packages and unpacking $(( $(date +%s) - t0 )) s"

# ---------------------------------------------------------------- database
MAINTDB=${PGDATABASE:-postgres}
if ! psql -X -q -d "$MAINTDB" -c 'SELECT 1' >/dev/null 2>"$TMP/psql.err"; then
    ok 1 "database reachable (PGHOST=${PGHOST:-} PGPORT=${PGPORT:-})"
    sed 's/^/#   /' "$TMP/psql.err"
    finish
fi
TESTDB=cvl_corpora_$$
psql -X -q -d "$MAINTDB" -c "CREATE DATABASE $TESTDB" >/dev/null
ok $? "scratch database $TESTDB created"
export PGDATABASE=$TESTDB
Q() { psql -X -A -t -q -d "$TESTDB" -c "$1"; }
DIMSOPT=
Q "CREATE EXTENSION IF NOT EXISTS codevec" >/dev/null 2>&1 || DIMSOPT="--dims 0"

# one corpus: load_corpus NAME PATH
load_corpus() {
    local name=$1 path=$2 log=$TMP/$1.err t rc line seen parsed unchanged skipped reasons
    if [ ! -d "$path" ]; then
        ok 1 "$name: $path exists"
        return
    fi
    echo "# $name: $path"
    t=$(date +%s%N)
    "$LOADER" --no-progress -v --no-embed $DIMSOPT --repo "$name" "$path" > /dev/null 2> "$log"
    rc=$?
    echo "# time: $name loaded in $(awk -v a="$t" -v b="$(date +%s%N)" 'BEGIN {printf "%.1f", (b - a) / 1e9}') s: $(grep -E '^codevec-load: [0-9:]+ elapsed' "$log" | sed 's/^codevec-load: //')"
    line=$(grep -E '^codevec-load: [0-9]+ files seen' "$log")
    echo "#   ${line#codevec-load: }"
    grep -E '^codevec-load: (skipped:|text:)' "$log" | sed 's/^codevec-load: /#   /'
    errs=$(grep -oE '^codevec-load: skipped: .*' "$log" | grep -oE '(unreadable|unreadable-dir|parse-failed|invalid-output|rejected) [0-9]+' | tr '\n' ' ')
    if [ "$rc" -eq 0 ] || { [ "$rc" -eq 1 ] && [ -n "$errs" ]; }; then
        ok 0 "$name: no abort (exit $rc${errs:+: $errs})"
    else
        ok 1 "$name: no abort (exit $rc)"
        grep -E 'database error|error' "$log" | head -5 | sed 's/^/#   /'
        return
    fi
    read -r seen parsed unchanged skipped <<<"$(echo "$line" | sed -E 's/^codevec-load: ([0-9]+) files seen, ([0-9]+) parsed .*\), ([0-9]+) unchanged, ([0-9]+) skipped$/\1 \2 \3 \4/')"
    reasons=$(grep -E '^codevec-load: skipped:' "$log" | grep -oE '[0-9]+' | awk '{s += $1} END {print s + 0}')
    is "$((parsed + unchanged + ${reasons:-0}))" "$seen" "$name: every file accounted for ($seen seen = $parsed parsed + $unchanged unchanged + ${reasons:-0} skipped by reason)"
    is "$(find "$path" \( -name .git -o -name .hg -o -name .svn \) -prune -o ! -type d -print | wc -l)" "$seen" \
       "$name: files seen equals find's count of the tree"
    named=$(grep -cE '^codevec-load: skipped [^:]+: [a-z0-9-]+' "$log")
    filelevel=$(grep -E '^codevec-load: skipped:' "$log" | grep -oE '(too-large|empty|binary|encoding|path-not-utf8|unreadable|vanished|parse-failed|invalid-output|rejected) [0-9]+' | grep -oE '[0-9]+' | awk '{s += $1} END {print s + 0}')
    is "$named" "${filelevel:-0}" "$name: -v names every file skipped after reading, with its reason"
    is "$(Q "SELECT count(*) FROM code.files f JOIN code.repos r ON r.id = f.repo_id WHERE r.name = '$name'")" \
       "$parsed" "$name: code.files holds every parsed file"
    Q "SELECT json_build_object('path', f.path, 'start_line', s.start_line, 'end_line', s.end_line, 'code', s.code)
       FROM code.snippets s JOIN code.files f ON f.id = s.file_id JOIN code.repos r ON r.id = f.repo_id
       WHERE r.name = '$name' ORDER BY md5(s.id::text) LIMIT $SAMPLE" > "$TMP/$name.sample"
    python3 "$CHECK" "$path" "$TMP/$name.sample" --log "$log" --all > "$TMP/$name.check"
    ok $? "$name: $(wc -l < "$TMP/$name.sample") sampled snippets are the text Python reads; kept files decode and encoding skips agree with Python"
    grep '^#' "$TMP/$name.check" | sed 's/^#/#  /'
    "$LOADER" --no-progress --no-embed $DIMSOPT --repo "$name" "$path" > /dev/null 2> "$log.2"
    grep -q " 0 parsed (0 new, 0 changed, 0 with syntax errors), $parsed unchanged, $skipped skipped" "$log.2"
    ok $? "$name: a second load finds every file unchanged"
}

t0=$(date +%s)
load_corpus python-stdlib /usr/lib/python3.11
load_corpus python-tests "$PYTESTS"
if [ -d "$PYTESTS" ]; then
    # hand-written facts about CPython's encoding test files
    L=$TMP/python-tests.err
    grep -q '^codevec-load: encoded_modules/module_koi8_r.py: decoded from koi8-r$' "$L"
    ok $? "python-tests: a KOI8-R module (PEP 263) is decoded"
    grep -q '^codevec-load: encoded_modules/module_iso_8859_1.py: decoded from iso-8859-1$' "$L"
    ok $? "python-tests: a Latin-1 module (PEP 263) is decoded"
    is "$(grep -oE '^codevec-load: skipped bad_coding2?.py: encoding$' "$L" | wc -l)" 2 \
       "python-tests: bad_coding.py (unknown codec) and bad_coding2.py (BOM + utf8 cookie) are skipped as Python refuses them"
    grep -q '^codevec-load: badsyntax_pep3120.py: 1 invalid UTF-8 sequence replaced by U+FFFD$' "$L"
    ok $? "python-tests: badsyntax_pep3120.py's stray byte becomes U+FFFD"
fi
load_corpus dist-packages /usr/lib/python3/dist-packages
load_corpus go "$(ls -d /usr/share/go-1.19/src /usr/lib/go-*/src 2>/dev/null | head -1)"
load_corpus rust /usr/share/cargo/registry
load_corpus node /usr/share/nodejs
load_corpus linux "$LINUX"
if [ -d "$HFH/huggingface_hub" ]; then
    load_corpus hfh "$HFH/huggingface_hub"
    is "$(Q "SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id
             JOIN code.repos r ON r.id = f.repo_id WHERE r.name = 'hfh'
             AND f.path = 'inference/_providers/together.py' AND s.symbol = '_prepare_payload_as_dict'")" \
       "$(grep -c '^    def _prepare_payload_as_dict' "$HFH/huggingface_hub/inference/_providers/together.py")" \
       "hfh: the issue's together.py is stored with every _prepare_payload_as_dict method (grep's count)"
else
    ok 0 "huggingface_hub 1.33.0 # SKIP pip download failed (no PyPI)"
fi
echo "# time: all corpora $(( $(date +%s) - t0 )) s"
finish
