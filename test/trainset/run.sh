#!/usr/bin/env bash
# test/trainset/run.sh -- tools/train-model/build-pairs.py, the training set
# of `make model-code`: on a small tree written here (Python and Go), the
# pairs it makes are exactly the documented functions the rules keep, each
# query is the doc's first sentence and each text the loader's own
# --strip-docs embed_text (read back from codevec-load --jsonl here, not
# from build-pairs), and nothing of a stand-in "benchmark" (its code, its
# queries) gets through.  No server, no network.
# Ends with "N passed, N failed"; exit status 1 on failure.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export CODEVEC_LOAD=${LOADER:-$ROOT/loaders/codevec-load}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/trainset-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
PASS=0 FAIL=0 N=0
ok() {
	N=$((N + 1))
	if [ "$1" -eq 0 ]; then PASS=$((PASS + 1)); echo "ok $N - $2"
	else FAIL=$((FAIL + 1)); echo "not ok $N - $2"; fi
}
is() {
	if [ "$1" = "$2" ]; then ok 0 "$3"
	else ok 1 "$3"; printf '#   got:  %s\n#   want: %s\n' "$1" "$2"; fi
}

mkdir -p "$TMP/py/pkg" "$TMP/bench/pkg" "$TMP/go/store"
cat > "$TMP/py/pkg/conf.py" <<'PY'
def parse_config_file(path, strict=False):
    """Reads the settings file at path into a dictionary of options.

    Lines without '=' are skipped unless strict is set.
    """
    out = {}
    for line in open(path):
        key, _, value = line.partition('=')
        out[key.strip()] = value.strip()
    return out


def merge_sorted(a, b):
    """Combines two ordered lists into one ordered list of all items."""
    out = []
    while a and b:
        out.append(a.pop(0) if a[0] <= b[0] else b.pop(0))
    return out + a + b


def adler(buf):
    """Computes the rolling checksum of a byte buffer the Adler way."""
    s1, s2 = 1, 0
    for c in buf:
        s1 = (s1 + c) % 65521
        s2 = (s2 + s1) % 65521
    return (s2 << 16) | s1


def test_parse_config_file():
    """Checks that parsing works on a small file with two lines."""
    got = parse_config_file('a.conf')
    assert got == {'a': '1'}


def first_of(items):
    """Picks one element from the collection given by the caller."""
    for x in items:
        return x
    return None


def last_of(items):
    """Picks one element from the collection given by the caller."""
    x = None
    for x in items:
        pass
    return x


def undocumented(a):
    b = a + 1
    c = b * 2
    return c
PY
# the same function in a later file (the loader reads files in path order): the first copy is kept
cat > "$TMP/py/pkg/later.py" <<'PY'
def parse_config_file(path, strict=False):
    """Loads a settings file into a dict (an older copy of the same code)."""
    out = {}
    for line in open(path):
        key, _, value = line.partition('=')
        out[key.strip()] = value.strip()
    return out
PY
# the stand-in benchmark: merge_sorted's code (its doc differs) and adler's query
cat > "$TMP/bench/pkg/other.py" <<'PY'
def merge_sorted(a, b):
    out = []
    while a and b:
        out.append(a.pop(0) if a[0] <= b[0] else b.pop(0))
    return out + a + b
PY
printf '%s\n' 'Computes the rolling checksum of a byte buffer the Adler way' > "$TMP/bench-queries.txt"
cat > "$TMP/go/store/store.go" <<'GO'
package store

// Open opens the key-value store kept in the directory dir, creating it when missing.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return &Store{dir: dir}, nil
}

// Get returns the value.
func (s *Store) Get(key string) []byte {
	return s.m[key]
}
GO

bp() { python3 "$ROOT/tools/train-model/build-pairs.py" "$@"; }
pairs_json() { python3 -c 'import gzip,json,sys; [print(json.dumps(json.loads(l), sort_keys=True)) for l in gzip.open(sys.argv[1], "rt")]' "$1"; }

bp tree --lang python --repo fixture --root "$TMP/py" --out "$TMP/py.jsonl.gz" \
	--exclude-corpus "$TMP/bench" --exclude-queries "$TMP/bench-queries.txt" 2>"$TMP/py.err"
ok $? "build-pairs tree runs on a Python tree"
pairs_json "$TMP/py.jsonl.gz" > "$TMP/py.jsonl"
is "$(python3 -c 'import json,sys; print("|".join(json.loads(l)["query"] for l in open(sys.argv[1])))' "$TMP/py.jsonl")" \
	"Reads the settings file at path into a dictionary of options" \
	"one pair: parse_config_file (benchmark code, benchmark query, test, ambiguous and undocumented functions and a copy are not pairs)"
grep -q "'code in the benchmark': 1" "$TMP/py.err"; ok $? "merge_sorted dropped: its code is in the benchmark"
grep -q "'query in the benchmark': 1" "$TMP/py.err"; ok $? "adler dropped: its query is a benchmark query"
grep -q "'ambiguous query': 2" "$TMP/py.err"; ok $? "first_of and last_of dropped: one sentence documents both"
grep -q "'duplicate code': 1" "$TMP/py.err"; ok $? "the second copy of parse_config_file (same code, another doc) dropped"

# the text is the loader's --strip-docs embed_text of that snippet (read here)
"$CODEVEC_LOAD" --jsonl -q --strip-docs "$TMP/py" > "$TMP/strip.jsonl"
want=$(python3 -c '
import json, sys
for l in open(sys.argv[1]):
    s = json.loads(l)
    if s["path"] == "pkg/conf.py" and s["symbol"] == "parse_config_file":
        print(json.dumps(s["embed_text"]))' "$TMP/strip.jsonl")
got=$(python3 -c 'import json,sys; print(json.dumps(json.loads(open(sys.argv[1]).readline())["text"]))' "$TMP/py.jsonl")
is "$got" "$want" "the pair's text is codevec-load --strip-docs's embed_text of parse_config_file"
case $got in *settings\ file\ at\ path*|*strict\ is\ set*) ok 1 "no doc in the text" ;; *) ok 0 "no doc in the text" ;; esac
case $got in *parse\ config\ file*) ok 0 "the text has the name as words (--embed-words default)" ;;
	*) ok 1 "the text has the name as words (--embed-words default)" ;; esac

# without exclusions the benchmark's function and query come back
bp tree --lang python --repo fixture --root "$TMP/py" --out "$TMP/py2.jsonl.gz" 2>/dev/null
is "$(pairs_json "$TMP/py2.jsonl.gz" | python3 -c 'import json,sys; print("|".join(sorted(json.loads(l)["query"] for l in sys.stdin)))')" \
	"Combines two ordered lists into one ordered list of all items|Computes the rolling checksum of a byte buffer the Adler way|Reads the settings file at path into a dictionary of options" \
	"without exclusions: merge_sorted and adler are pairs too (the copy still is not)"

# Go: the doc's leading name is dropped; a doc that restates the name is no query
bp tree --lang go --repo gofix --root "$TMP/go" --out "$TMP/go.jsonl.gz" 2>/dev/null
ok $? "build-pairs tree runs on a Go tree"
is "$(pairs_json "$TMP/go.jsonl.gz" | python3 -c 'import json,sys; print("|".join(json.loads(l)["query"] + "@" + json.loads(l)["repo"] for l in sys.stdin))')" \
	"Opens the key-value store kept in the directory dir, creating it when missing@gofix" \
	"Go: Open's query without its name; Get (2 lines, restates the name) is none"
# deterministic bytes: the same input, the same file
bp tree --lang go --repo gofix --root "$TMP/go" --out "$TMP/go2.jsonl.gz" 2>/dev/null
cmp -s "$TMP/go.jsonl.gz" "$TMP/go2.jsonl.gz"; ok $? "the same tree gives byte-identical pairs files"

# the manifest: pinned, Debian only, none of the benchmark's packages
python3 - "$ROOT/tools/train-model/packages.tsv" "$ROOT/bench/quality/manifest.tsv" <<'PY' > "$TMP/man.out"
import sys
rows = [l.rstrip('\n').split('\t') for l in open(sys.argv[1]) if not l.startswith('#') and l.strip()]
bench = {l.split('\t')[3] for l in open(sys.argv[2]) if not l.startswith('#') and l.strip()}
bad = [r[3] for r in rows if len(r) != 8 or r[2] != 'deb' or r[4] == '-' or len(r[5]) != 64]
print('rows', len(rows), 'unpinned', len(bad), 'in-benchmark', sorted(set(r[3] for r in rows) & bench))
PY
read -r _ nrows _ nbad _ inbench < "$TMP/man.out"
[ "$nrows" -ge 300 ]; ok $? "packages.tsv lists $nrows packages"
is "$nbad" 0 "every package is pinned (version and sha256)"
is "$inbench" "[]" "no package of the benchmark's manifest is a training package"

echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
