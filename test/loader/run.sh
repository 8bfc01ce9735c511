#!/usr/bin/env bash
# test/loader/run.sh -- tests of codevec-load (issue 3).
#
# Assumes the loader is built (make -C loaders).  The database tests need
# the standard libpq variables (PGHOST, PGPORT, PGUSER, PGDATABASE) to point
# at a running PostgreSQL 15 server, on which the user may create databases
# and where the codevec extension is installed (each run uses its own
# scratch database, dropped at the end).  CVL_TEST_NO_DB=1 skips them.
#
#   bash test/loader/run.sh                  run everything
#   bash test/loader/run.sh --update-golden  rewrite expected/*.jsonl
#
# Output is TAP-like ("ok N - ...", "not ok N - ...") and ends with the line
# "N passed, N failed"; the exit status is non-zero when any test failed.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LOADER=${LOADER:-$ROOT/loaders/codevec-load}
FIXTURES=$HERE/fixtures
EXPECTED=$HERE/expected
TMP=$(mktemp -d "${TMPDIR:-/tmp}/cvl-test.XXXXXX")
chmod 755 "$TMP"
PASS=0
FAIL=0
N=0
TESTDB=
cleanup() {
    if [ -n "$TESTDB" ]; then
        psql -X -q -d "${CVL_MAINTDB:-postgres}" -c "DROP DATABASE IF EXISTS $TESTDB" >/dev/null 2>&1
    fi
    chmod -R u+rwX "$TMP" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

source "$ROOT/test/tap.sh"	# ok, is, like, skip
between() { # between GOT LOW HIGH DESCRIPTION
    if [ "$1" -ge "$2" ] 2>/dev/null && [ "$1" -le "$3" ]; then ok 0 "$4 ($1)"
    else ok 1 "$4"; echo "#   got '$1', want $2..$3"; fi
}
# jq-free JSONL field extraction: jsonl_select FILE FILTER-EXPR FIELDS
jsonl() { python3 "$HERE/jsonl.py" "$@"; }

if [ ! -x "$LOADER" ]; then
    echo "not ok 1 - codevec-load is built ($LOADER missing: run make -C loaders)"
    echo "0 passed, 1 failed"
    exit 1
fi

if [ "${1:-}" = "--update-golden" ]; then
    mkdir -p "$EXPECTED"
    for d in "$FIXTURES"/*/; do
        lang=$(basename "$d")
        "$LOADER" -q --jsonl "$d" > "$EXPECTED/$lang.jsonl"
        echo "wrote $EXPECTED/$lang.jsonl ($(wc -l < "$EXPECTED/$lang.jsonl") snippets)"
    done
    exit 0
fi

# ---------------------------------------------------------------- CLI
echo "# command line"
"$LOADER" --help > "$TMP/help" 2>&1; ok $? "--help exits 0"
grep -q "Exit status" "$TMP/help"; ok $? "--help documents exit codes"
# the version is the extension's: codevec.control's default_version
ctl_version=$(sed -n "s/^default_version = '\(.*\)'$/\1/p" "$ROOT/codevec.control")
is "$("$LOADER" --version | head -n 1 | cut -d' ' -f1-2)" "codevec-load $ctl_version" \
   "--version prints codevec.control's default_version ($ctl_version)"
is "$(head -n 1 "$TMP/help" | cut -d' ' -f1-2)" "codevec-load $ctl_version" "--help names the same version"
# loaders/Makefile hands CPPFLAGS to every compile and LDFLAGS to the link
# (Debian's hardening flags, dpkg-buildflags): what make would run
make -s -n -B -C "$ROOT/loaders" build/main.o build/obj/c-parser.o codevec-load \
    CPPFLAGS=-DCVL_TEST_CPPFLAGS LDFLAGS=-Wl,-z,cvltestldflags >"$TMP/make-n" 2>&1
compiles=$(grep -c -- ' -c .*\(main\|parser\)\.c$' "$TMP/make-n")
is "$(grep -- ' -c .*\(main\|parser\)\.c$' "$TMP/make-n" | grep -c -- '-DCVL_TEST_CPPFLAGS')/$compiles" "$compiles/$compiles" \
   "loaders/Makefile: CPPFLAGS reach the loader's and every grammar's compile"
is "$compiles" "$((1 + $(ls "$ROOT"/loaders/build/src/*/src/parser.c "$ROOT"/loaders/build/src/typescript/*/src/parser.c 2>/dev/null | wc -l)))" \
   "... main.c and one parser.c per grammar were compiled"
is "$(grep -- '-o codevec-load ' "$TMP/make-n" | grep -c -- '-Wl,-z,cvltestldflags')" 1 \
   "loaders/Makefile: LDFLAGS reach the link"
"$LOADER" --no-such-option >/dev/null 2>&1; is $? 2 "unknown option exits 2"
"$LOADER" >/dev/null 2>&1; is $? 2 "no PATH exits 2"
"$LOADER" --max-file-bytes=abc --jsonl . >/dev/null 2>&1; is $? 2 "bad --max-file-bytes exits 2"
"$LOADER" -q --jsonl /nonexistent/path >/dev/null 2>&1; is $? 4 "missing PATH exits 4"
"$LOADER" -q -d "host=$TMP port=1" "$TMP/a/src" "$TMP/b/src" >/dev/null 2>&1
is $? 2 "two PATHs with the same default repository name exit 2"
"$LOADER" -q -d "host=$TMP port=1 connect_timeout=2" "$FIXTURES/c" >/dev/null 2>"$TMP/err"
is $? 3 "connection failure exits 3"
grep -q "cannot connect" "$TMP/err"; ok $? "connection failure says so"

# ---------------------------------------------------------------- golden
echo "# golden snippets per language"
for d in "$FIXTURES"/*/; do
    lang=$(basename "$d")
    "$LOADER" -q --jsonl "$d" > "$TMP/$lang.jsonl" 2>"$TMP/$lang.err"
    rc=$?
    if [ $rc -eq 0 ] && diff -u "$EXPECTED/$lang.jsonl" "$TMP/$lang.jsonl" > "$TMP/$lang.diff"; then
        ok 0 "golden $lang ($(wc -l < "$TMP/$lang.jsonl") snippets)"
    else
        ok 1 "golden $lang (exit $rc)"
        head -40 "$TMP/$lang.diff" | sed 's/^/#   /'
    fi
done
# a few facts spelled out, so a wrong golden file cannot hide them
is "$(jsonl "$TMP/python.jsonl" qualified_name=shapes.Shape.name start_line end_line doc)" \
   "19	22	The shape's name." "python: decorated method lines and docstring"
is "$(jsonl "$TMP/c.jsonl" symbol=list_push start_line end_line doc)" \
   "22	32	Push a value onto the front of the list.\\nReturns the new head, or NULL when out of memory." \
   "c: comment block before a function"
is "$(jsonl "$TMP/python.jsonl" symbol=after_error kind)" "function" \
   "python: definitions after a syntax error are kept"
is "$(jsonl "$TMP/go.jsonl" symbol=Start qualified_name kind)" "server.Server.Start	method" \
   "go: method qualified by package and receiver"
is "$(jsonl "$TMP/rust.jsonl" symbol=new qualified_name doc)" "Point::new	Makes a new point." \
   "rust: impl method with rustdoc"
is "$(jsonl "$TMP/rust.jsonl" symbol=norm doc)" "None" "rust: plain // comment is not rustdoc"
is "$(jsonl "$TMP/rust.jsonl" symbol=Point,kind=struct start_line end_line doc)" "4	8	A point in the plane." \
   "rust: #[derive] belongs to the struct; rustdoc above it"
is "$(jsonl "$TMP/java.jsonl" symbol=push qualified_name start_line)" "org.example.util.Stack.push	21" \
   "java: method with package and class"
is "$(jsonl "$TMP/cpp.jsonl" symbol=clamp start_line qualified_name)" "19	geo::clamp" \
   "cpp: template function in a namespace starts at template"
is "$(jsonl "$TMP/cpp.jsonl" symbol=draw path language qualified_name doc)" \
   "widget.h	cpp	ui::Widget::draw	Draw the widget." "cpp: a .h file with C++ in it is parsed as C++"
is "$(jsonl "$TMP/c.jsonl" - language | sort -u)" "c" "c: .c files stay C"
is "$(jsonl "$TMP/typescript.jsonl" symbol=fetchUser kind signature)" \
   "function	async function fetchUser(id: UserId): Promise<User>" "typescript: exported async function"
is "$(jsonl "$TMP/typescript.jsonl" symbol=Title start_line end_line)" "6	8" "tsx: component function"
is "$(jsonl "$TMP/javascript.jsonl" symbol=mul kind doc)" "function	Multiply." "javascript: arrow function bound to const"
is "$(jsonl "$TMP/javascript.jsonl" symbol=onClick qualified_name kind doc)" "Button.onClick	method	Handle a click." \
   "javascript: class field holding an arrow function is a method"
is "$(jsonl "$TMP/typescript.jsonl" symbol=tick qualified_name start_line end_line)" "Clock.tick	18	20" \
   "tsx: class field method in a component"
is "$(jsonl "$TMP/c.jsonl" symbol=point_t kind start_line end_line signature)" "struct	14	16	typedef struct point_t" \
   "c: anonymous struct named by its typedef"

# independent facts: Python's own ast for the Python fixtures, a
# hand-written table (facts.tsv) for the others
python3 "$HERE/astfacts.py" "$FIXTURES/python" "$TMP/python.jsonl" > "$TMP/ast.out"
ok $? "python: every function, method and class with its name, kind, lines and docstring equals Python's ast ($(tail -1 "$TMP/ast.out" | sed 's/^# //'))"
grep '^#   ' "$TMP/ast.out" | head -20
python3 - "$HERE/facts.tsv" "$TMP" > "$TMP/facts.out" <<'EOF2'
import json, sys
want = {tuple(l.rstrip("\n").split("\t")) for l in open(sys.argv[1]) if l.strip() and not l.startswith("#")}
got = set()
for lang in sorted({w[0].split("/")[0] for w in want}):
    for l in open("%s/%s.jsonl" % (sys.argv[2], lang)):
        d = json.loads(l)
        got.add((lang + "/" + d["path"], d["kind"], d["qualified_name"], str(d["start_line"]), str(d["end_line"])))
for f in sorted(want - got):
    print("#   missing: %s" % "\t".join(f))
for f in sorted(got - want):
    print("#   extra: %s" % "\t".join(f))
print("# %d facts" % len(want))
sys.exit(0 if want == got else 1)
EOF2
ok $? "C, C++, Go, Java, JavaScript, Rust, TypeScript: snippets equal the hand-written facts.tsv (kind, name, lines; $(tail -1 "$TMP/facts.out" | sed 's/^# //'))"
grep '^#   ' "$TMP/facts.out" | head -20

# embed_text: bounded, starts with the qualified name's words, the qualified
# name as is, then the signature as words when there is one (the defaults:
# fields name, signature, doc, body; --embed-words name+all; 500 bytes)
python3 - "$HERE" "$TMP"/*.jsonl <<'EOF'
import json, sys
sys.path.insert(0, sys.argv[1])
from words import render
bad = 0
for f in sys.argv[2:]:
    for line in open(f):
        d = json.loads(line)
        t = d["embed_text"]
        head = render(d["qualified_name"], False) + "\n" + d["qualified_name"] + (
            "\n" + render(d["signature"]) if d["signature"] else "")
        if len(t.encode()) > 500 or not (t == head[:len(t)] or t.startswith(head)):
            bad += 1
            print("#   " + repr(t[:200]))
sys.exit(1 if bad else 0)
EOF
ok $? "embed_text: at most 500 bytes, begins with the name's words, the name and the signature as words"

# --embed-words: identifiers as words, split like codevec_code's text search
# parser (src/tsparser.c).  test/loader/words.py is an independent rendering
# of the same rule (a boundary predicate, not the loader's scanner).
words() { python3 "$HERE/words.py" "$@"; }
is "$(words split parseConfigFile read_all_bytes HTTPServer getURLs parseHTTPConfig_v2 \
        __init__ XMLHttpRequest utf8Decode base64 IDs | cut -f2 | tr '\n' '|')" \
   "parse config file|read all bytes|http server|get urls|parse http config v 2|init|xml http request|utf 8 decode|base 64|ids|" \
   "--embed-words rule (words.py): camelCase, snake_case, acronyms, plural acronyms, digits"
W=$TMP/words
mkdir -p "$W"
printf 'def parseConfigFile(path):\n    return read_all_bytes(HTTPServer(path), getURLs)\n' > "$W/cfg.py"
printf 'package srv\n\nfunc (s *HTTPServer) ServeJSON_v2(w io.Writer) error {\n\treturn nil\n}\n' > "$W/srv.go"
for m in name all name+all bare; do
    "$LOADER" -q --jsonl --embed-words=$m "$W" > "$TMP/w-$m.jsonl"
done
is "$(jsonl "$TMP/w-all.jsonl" symbol=parseConfigFile embed_text)" \
   'cfg.parse config file\ndef parse config file(path)\ndef parse config file(path):\n    return read all bytes(http server(path), get urls)' \
   "--embed-words=all: every identifier as lower-case words, punctuation kept"
is "$(jsonl "$TMP/w-name.jsonl" symbol=parseConfigFile embed_text)" \
   'cfg parse config file\ncfg.parseConfigFile\ndef parseConfigFile(path)\ndef parseConfigFile(path):\n    return read_all_bytes(HTTPServer(path), getURLs)' \
   "--embed-words=name: a first line of the qualified name's words, then the text as is"
is "$(jsonl "$TMP/w-name+all.jsonl" symbol=ServeJSON_v2 embed_text)" \
   $'srv http server serve json v 2\\nsrv.HTTPServer.ServeJSON_v2\\nfunc (s *http server) serve json v 2(w io.writer) error\\nfunc (s *http server) serve json v 2(w io.writer) error {\\n\treturn nil\\n}' \
   "--embed-words=name+all: the words line, the name as is, the rest as words"
is "$(jsonl "$TMP/w-bare.jsonl" symbol=ServeJSON_v2 embed_text)" \
   'srv http server serve json v 2\nfunc s http server serve json v 2 w io writer error\nfunc s http server serve json v 2 w io writer error\nreturn nil' \
   "--embed-words=bare: words only, one space or newline between them"
"$LOADER" -q --jsonl --embed-words=camel "$W" >/dev/null 2>&1; is $? 2 "bad --embed-words exits 2"
# every snippet of every fixture, each mode, against words.py's rendering of
# the same tree's plain embed_text (uncut, so that the cut cannot differ)
"$LOADER" -q --jsonl --embed-words=none --embed-max-bytes=16M "$FIXTURES" > "$TMP/w-none-fx.jsonl"
for m in name all name+all bare; do
    "$LOADER" -q --jsonl --embed-words=$m --embed-max-bytes=16M "$FIXTURES" > "$TMP/w-fx.jsonl"
    words check "$TMP/w-none-fx.jsonl" "$TMP/w-fx.jsonl" $m > "$TMP/w-check.out"
    ok $? "--embed-words=$m: embed_text of every fixture snippet equals words.py's rendering"
    grep -v '^# 0 of' "$TMP/w-check.out"
done
"$LOADER" -q --jsonl --embed-words=all --embed-max-bytes=200 "$FIXTURES" > "$TMP/w-cut.jsonl"
python3 - "$TMP/w-cut.jsonl" <<'PYEOF'
import json, sys
sys.exit(any(len(json.loads(l)["embed_text"].encode()) > 200 for l in open(sys.argv[1])))
PYEOF
ok $? "--embed-words=all: embed_text still at most --embed-max-bytes (cut after rendering)"

# ---------------------------------------------------------------- text
echo "# text: encodings and cuts"
# encodings/ (made by make-encodings.py): declared Latin-1, Big5, cp1252,
# ISO-8859-15, UTF-16 LE/BE and UTF-32 with a BOM, a UTF-8 BOM, stray
# invalid bytes, and files to skip; textref.py reads them as Python does
"$LOADER" --no-progress -v --jsonl "$HERE/encodings" > "$TMP/enc.jsonl" 2> "$TMP/enc.err"
is $? 0 "encodings: exit 0"
python3 "$HERE/textcheck.py" "$HERE/encodings" "$TMP/enc.jsonl" --log "$TMP/enc.err" --all > "$TMP/enc.out"
ok $? "encodings: every snippet's code is the text Python decodes from the file; skips and U+FFFD counts agree with Python"
sed -n 's/^#   /#   /p' "$TMP/enc.out" | head -20
is "$(jsonl "$TMP/enc.jsonl" - path | sort -u | tr '\n' ' ')" \
   "big5.py bom.py cp1252.py emacs.c emacs2.js invalid.c latin1.py line3.py utf16be.c utf16le.js utf32le.go " \
   "encodings: the files that decode are loaded (hand-written list)"
is "$(grep -o 'skipped [a-z0-9]*\.[a-z]*: encoding' "$TMP/enc.err" | sort | tr '\n' ' ')" \
   "skipped badutf16.js: encoding skipped bomlatin.py: encoding skipped undecodable.py: encoding skipped unknown.py: encoding " \
   "encodings: unknown or undecodable encodings are skipped with the reason encoding (hand-written list)"
is "$(jsonl "$TMP/enc.jsonl" path=big5.py symbol doc)" "說明	中文說明：讀取設定檔" "encodings: Big5 (PEP 263) name and docstring"
is "$(jsonl "$TMP/enc.jsonl" path=latin1.py qualified_name doc)" "latin1.café	Ça coûte 5 ¤, déjà payé." \
   "encodings: Latin-1 (PEP 263, Emacs style)"
is "$(jsonl "$TMP/enc.jsonl" path=utf16le.js symbol)" "grüßen" "encodings: UTF-16 LE with a BOM"
is "$(jsonl "$TMP/enc.jsonl" path=bom.py symbol start_line)" "bom	1" "encodings: a UTF-8 BOM is dropped, lines unchanged"
grep -q '^codevec-load: invalid.c: 17 invalid UTF-8 sequences replaced by U+FFFD$' "$TMP/enc.err"
ok $? "encodings: invalid.c's 17 ill-formed sequences counted (-v)"
grep -q 'text: 8 files decoded from a declared encoding or UTF-16/32, 1 with a UTF-8 BOM, 2 with invalid UTF-8 (18 sequences' "$TMP/enc.err"
ok $? "encodings: the summary counts decoded, BOM and repaired files"

# cuts: a 2-, 3- and 4-byte character at every offset around each cut
# (signature 400 bytes, doc 300 bytes in embed_text, --embed-max-bytes)
CUT=$TMP/cuts
python3 "$HERE/cuts.py" make "$CUT"
"$LOADER" -q --jsonl "$CUT/cuts.py" > "$CUT/def.jsonl"
python3 "$HERE/cuts.py" sig "$CUT/def.jsonl" > "$CUT/sig.out"
ok $? "cuts: signatures cut at 400 bytes on a character boundary ($(tail -1 "$CUT/sig.out" | sed 's/^# //'))"
"$LOADER" -q --jsonl --embed-fields=doc --embed-words=none "$CUT/cuts.py" > "$CUT/doc.jsonl"
python3 "$HERE/cuts.py" doc "$CUT/doc.jsonl" > "$CUT/doc.out"
ok $? "cuts: docs cut at 300 bytes on a character boundary in embed_text ($(tail -1 "$CUT/doc.out" | sed 's/^# //'))"
for m in none name+all; do
    "$LOADER" -q --jsonl --embed-words=$m --embed-max-bytes=16M "$CUT/cuts.py" > "$CUT/full.jsonl"
    rm -f "$CUT"/cut-*.jsonl
    for n in $(seq 20 1 140); do
        "$LOADER" -q --jsonl --embed-words=$m --embed-max-bytes=$n "$CUT/cuts.py" > "$CUT/cut-$n.jsonl"
    done
    python3 "$HERE/cuts.py" embed "$CUT/full.jsonl" "$CUT"/cut-*.jsonl > "$CUT/embed.out"
    ok $? "cuts: --embed-words=$m, --embed-max-bytes 20..140: embed_text is the uncut text cut on a character boundary ($(tail -1 "$CUT/embed.out" | sed 's/^# //'))"
    grep '^#   ' "$CUT/embed.out" | head -5
done
# 300 files of random ill-formed UTF-8 (seeded): the loader's U+FFFD
# replacement equals Python's bytes.decode('utf-8', 'replace')
"$LOADER" --no-progress -v --jsonl "$CUT/rand" > "$CUT/rand.jsonl" 2> "$CUT/rand.err"
python3 "$HERE/textcheck.py" "$CUT/rand" "$CUT/rand.jsonl" --log "$CUT/rand.err" --all > "$CUT/rand.out"
ok $? "random ill-formed UTF-8: code and replacement counts equal Python's errors='replace' ($(wc -l < "$CUT/rand.jsonl") snippets)"
grep '^#   ' "$CUT/rand.out" | head -5
# the repro of issue 22 (huggingface_hub 1.33.0's together.py), reduced:
# a signature whose 400-byte cut fell inside a character
python3 - "$TMP/repro.py" <<'EOF2'
import sys
head = "    def _prepare_payload_as_dict(self, inputs: Any, parameters: dict) -> Optional[dict]:  # "
sig = head.strip()                      # the signature starts at "def"
pad = "x" * (398 - len(sig.encode()))   # the 3-byte dash starts at byte 398
open(sys.argv[1], "w", encoding="utf-8").write(
    "class TogetherImageToVideoTask:\n" + head + pad + "\u2014 the rest\n        pass\n")
EOF2
"$LOADER" -q --jsonl "$TMP/repro.py" > "$TMP/repro.jsonl"
python3 -c 'import json,sys; d=[json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]; sys.exit(not d)' "$TMP/repro.jsonl"
ok $? "issue 22 repro: a signature cut next to a 3-byte character is valid UTF-8"

# ---------------------------------------------------------------- bad input
echo "# bad input"
B=$TMP/bad
mkdir -p "$B/sub"
printf 'def good():\n    return 1\n' > "$B/good.py"
printf 'int main(void) { return 0; }\n\0\0binary' > "$B/binary.c"
printf '# caf\xe9\ndef latin1():\n    pass\n' > "$B/latin1.py"
: > "$B/empty.py"
python3 -c "import sys; sys.stdout.write('var x = [' + '1,' * (25 * 1024 * 1024) + '1];\n')" > "$B/huge.js"
printf 'def ok_before():\n    pass\n\ndef broken(:\n    pass\n\nclass AfterError:\n    def m(self):\n        pass\n' > "$B/sub/syntax.py"
printf 'fn main() {}\n' > "$B/sub/notes.txt"
mkfifo "$B/fifo.py" 2>/dev/null
printf 'def latin1_name():\n    pass\n' > "$B/$(printf 'caf\xe9.py')"   # a file name that is not UTF-8
ln -s .. "$B/sub/loop"
ln -s ../good.py "$B/sub/link.py"
"$LOADER" --no-progress -v --jsonl "$B" > "$TMP/bad.jsonl" 2> "$TMP/bad.err"
rc=$?
is "$rc" 0 "bad input: exit 0 (policy skips only)"
grep -q 'skipped binary.c: binary' "$TMP/bad.err"; ok $? "bad input: binary file skipped with reason"
grep -q 'latin1.py: 1 invalid UTF-8 sequence replaced by U+FFFD' "$TMP/bad.err"
ok $? "bad input: a stray Latin-1 byte in UTF-8 is replaced by U+FFFD and reported"
grep -q 'skipped empty.py: empty' "$TMP/bad.err"; ok $? "bad input: empty file skipped with reason"
LC_ALL=C grep -q "skipped caf.\\.py: path-not-utf8" "$TMP/bad.err"
ok $? "bad input: a file name that is not UTF-8 (cannot be stored as text) skipped with reason"
grep -q 'skipped huge.js: too-large' "$TMP/bad.err"; ok $? "bad input: 50 MB single-line file skipped (over --max-file-bytes)"
grep -q 'symlink 2' "$TMP/bad.err"; ok $? "bad input: symlinks (incl. a loop) not followed"
grep -q 'special 1' "$TMP/bad.err"; ok $? "bad input: fifo skipped as special"
is "$(jsonl "$TMP/bad.jsonl" - symbol | sort | tr '\n' ' ')" "AfterError broken good latin1 m ok_before " \
   "bad input: good files and the parsable parts of a broken file are loaded"
rm -f "$B/huge.js"
python3 -c "import sys; sys.stdout.write(''.join('function f%d(a){return a+%d}' % (i, i) for i in range(100000)))" > "$TMP/minified.js"
"$LOADER" -q --jsonl --max-file-bytes=4M "$TMP/minified.js" > "$TMP/minified.jsonl"
is $? 0 "3 MB single-line (minified) file loads when --max-file-bytes allows"
is "$(jsonl "$TMP/minified.jsonl" symbol=f99999 start_line end_line)" "1	1" "minified file: 100000 functions on line 1"
# unreadable file: needs a non-root user when running as root
printf 'def secret():\n    pass\n' > "$B/unreadable.py"
chmod 000 "$B/unreadable.py"
if [ "$(id -u)" -ne 0 ]; then
    "$LOADER" --no-progress -v --jsonl "$B" > /dev/null 2> "$TMP/unr.err"; rc=$?
elif command -v runuser >/dev/null && id nobody >/dev/null 2>&1; then
    # a copy of the loader, in case nobody cannot reach the build folder
    cp "$LOADER" "$TMP/codevec-load"
    chmod -R o+rX "$TMP"; chmod 000 "$B/unreadable.py"
    runuser -u nobody -- "$TMP/codevec-load" --no-progress -v --jsonl "$B" > /dev/null 2> "$TMP/unr.err"; rc=$?
else
    rc=skip
fi
if [ "$rc" = skip ]; then
    ok 0 "unreadable file # SKIP no way to drop root"
else
    is "$rc" 1 "unreadable file: exit 1 (partial success)"
    grep -q 'skipped unreadable.py: unreadable' "$TMP/unr.err"; ok $? "unreadable file skipped with reason"
fi
rm -f "$B/unreadable.py" "$B/fifo.py"

# ---------------------------------------------------------------- walking
echo "# tree walking"
W=$TMP/walk
mkdir -p "$W/src" "$W/build" "$W/vendor/lib" "$W/tests"
for f in src/a.py src/b.gen.py build/out.py vendor/lib/v.py tests/test_a.py secret.py keep.py; do
    printf 'def %s():\n    pass\n' "$(basename "$f" .py | tr . _)" > "$W/$f"
done
if command -v git >/dev/null; then
    git -C "$W" init -q
    printf 'build/\n*.gen.py\n' > "$W/.gitignore"
    printf 'secret.py\n' >> "$W/.git/info/exclude"
    "$LOADER" --no-progress --jsonl "$W" > "$TMP/walk.jsonl" 2> "$TMP/walk.err"
    is "$(jsonl "$TMP/walk.jsonl" - path | sort | tr '\n' ' ')" \
       "keep.py src/a.py tests/test_a.py vendor/lib/v.py " ".gitignore and .git/info/exclude honoured"
    "$LOADER" --no-progress --jsonl "$W/src" > "$TMP/walk2.jsonl" 2>/dev/null
    is "$(jsonl "$TMP/walk2.jsonl" - path | tr '\n' ' ')" "a.py " "ignore rules apply when PATH is a subfolder"
else
    ok 0 "gitignore # SKIP git not installed"
fi
"$LOADER" -q --jsonl --exclude vendor --exclude 'tests/*' "$W" > "$TMP/walk3.jsonl"
is "$(jsonl "$TMP/walk3.jsonl" - path | sort | tr '\n' ' ')" "keep.py src/a.py " "--exclude prunes folders and globs"
"$LOADER" -q --jsonl --include 'test_*.py' "$W" > "$TMP/walk4.jsonl"
is "$(jsonl "$TMP/walk4.jsonl" - path | tr '\n' ' ')" "tests/test_a.py " "--include keeps only matches"
"$LOADER" -q --jsonl -j 1 "$FIXTURES" > "$TMP/j1.jsonl"
"$LOADER" -q --jsonl -j 4 "$FIXTURES" > "$TMP/j4.jsonl"
cmp -s "$TMP/j1.jsonl" "$TMP/j4.jsonl"; ok $? "output is identical with 1 and 4 threads"

# ---------------------------------------------------------------- real codebases
echo "# real codebases"
# Debian's libpython3.11-stdlib (not a pyenv copy, which sits in a git work
# tree whose .gitignore ignores it)
PYLIB=${CVL_TEST_PYLIB:-/usr/lib/python3.11}
if [ -d "$PYLIB/json" ]; then
    "$LOADER" --no-progress --jsonl "$PYLIB" > "$TMP/stdlib.jsonl" 2> "$TMP/stdlib.err"
    ok $? "Python stdlib ($PYLIB) loads"
    between "$(wc -l < "$TMP/stdlib.jsonl")" 10000 60000 "stdlib: snippet count in range"
    between "$(jsonl "$TMP/stdlib.jsonl" - path | sort -u | wc -l)" 400 3000 "stdlib: file count in range"
    want=$(grep -n '    def decode(self, s, _w=WHITESPACE.match):' "$PYLIB/json/decoder.py" | cut -d: -f1)
    is "$(jsonl "$TMP/stdlib.jsonl" qualified_name=json.decoder.JSONDecoder.decode start_line kind)" \
       "$want	method" "stdlib: json.decoder.JSONDecoder.decode at line $want"
    want=$(grep -n '^def makedirs' "$PYLIB/os.py" | cut -d: -f1)
    is "$(jsonl "$TMP/stdlib.jsonl" qualified_name=os.makedirs start_line)" "$want" "stdlib: os.makedirs at line $want"
    jsonl "$TMP/stdlib.jsonl" qualified_name=json.dumps doc | grep -q '^Serialize ``obj`` to a JSON formatted ``str``'
    ok $? "stdlib: json.dumps docstring"
    want=$(grep -n '^class OrderedDict' "$PYLIB/collections/__init__.py" | cut -d: -f1)
    is "$(jsonl "$TMP/stdlib.jsonl" qualified_name=collections.OrderedDict start_line kind)" "$want	class" \
       "stdlib: collections.OrderedDict (package __init__) at line $want"
else
    ok 0 "Python stdlib # SKIP not found"
fi
PGINC=$(pg_config --includedir-server 2>/dev/null)
if [ -f "$PGINC/storage/proc.h" ]; then
    "$LOADER" --no-progress --jsonl "$PGINC" > "$TMP/pginc.jsonl" 2> "$TMP/pginc.err"
    ok $? "PostgreSQL server headers ($PGINC) load"
    between "$(wc -l < "$TMP/pginc.jsonl")" 1500 10000 "pg headers: snippet count in range"
    want=$(grep -n '^struct PGPROC$' "$PGINC/storage/proc.h" | head -1 | cut -d: -f1)
    is "$(jsonl "$TMP/pginc.jsonl" path=storage/proc.h,symbol=PGPROC,kind=struct start_line)" "$want" \
       "pg headers: struct PGPROC at line $want"
    want=$(grep -n '^typedef struct List$' "$PGINC/nodes/pg_list.h" | head -1 | cut -d: -f1)
    is "$(jsonl "$TMP/pginc.jsonl" path=nodes/pg_list.h,symbol=List,kind=struct start_line)" "$want" \
       "pg headers: typedef struct List at line $want"
    want=$(grep -n '^list_length(const List \*l)' "$PGINC/nodes/pg_list.h" | head -1 | cut -d: -f1)
    got=$(jsonl "$TMP/pginc.jsonl" path=nodes/pg_list.h,symbol=list_length end_line start_line | cut -f2)
    is "$((got + 1))" "$want" "pg headers: static inline list_length starts the line before its name"
else
    ok 0 "PostgreSQL server headers # SKIP not found"
fi

# ---------------------------------------------------------------- database
if [ "${CVL_TEST_NO_DB:-}" = 1 ]; then
    ok 0 "database tests # SKIP CVL_TEST_NO_DB=1"
else
    source "$HERE/db_tests.sh"
fi

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
