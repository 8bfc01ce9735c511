#!/usr/bin/env bash
# test/trainset/run.sh -- tools/train-model/build-pairs.py, the training set
# of `make model-code`: on a small tree written here (Python and Go), the
# pairs it makes are exactly the documented functions the rules keep, each
# query is the doc's first sentence and each text the loader's own
# --strip-docs embed_text (read back from codevec-load --jsonl here, not
# from build-pairs), and nothing of a stand-in "benchmark" (its code, its
# queries) gets through.  No server.  Then tools/train-model/interpolate.py
# (WiSE-FT weight mixing) and bench/quality/ood/choose.py's fusion rule on
# made-up models and results (mixcheck.py) and bench/quality/ood/
# convex-fusion.py's score fusion and report (fusioncheck.py), in a venv of
# the pinned numpy and safetensors of requirements.txt (PyPI, once; kept in
# ~/.cache); eval-models.py's codevec backend against its numpy BERT pass on
# the server test/run.sh started (evalcheck.py); and webquery.py, train.py's web-query rewrite, with its draws
# fixed (webqcheck.py).
# Ends with "N passed, N failed"; exit status 1 on failure.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export CODEVEC_LOAD=${LOADER:-$ROOT/loaders/codevec-load}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/trainset-test.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
PASS=0 FAIL=0 N=0
source "$ROOT/test/tap.sh"	# ok, is, like, skip
source "$ROOT/test/venv.sh"	# pinned_venv

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

# --- the languages added second: C, C++, Java, TypeScript doc comment styles
mkdir -p "$TMP/c/lib" "$TMP/cpp/geo" "$TMP/java/org/example" "$TMP/ts/src"
cat > "$TMP/c/lib/list.c" <<'C'
/**
 * @brief Counts the entries that are kept in a linked list.
 * @param l the list
 * @return the count
 */
int list_count(const struct list *l)
{
	int n = 0;
	for (; l; l = l->next)
		n++;
	return n;
}

/**
 * list_splice() - join two chains of nodes into the first one
 * @a: the first chain
 * @b: the second chain
 *
 * Longer description that is not the query.
 */
void list_splice(struct list *a, struct list *b)
{
	while (a->next)
		a = a->next;
	a->next = b;
}

/**
 * g_queue_peek_tail:
 * @queue: a #GQueue
 *
 * Looks at the item at the back of a #GQueue without removing it.
 *
 * Returns: the data
 */
void *g_queue_peek_tail(GQueue *queue)
{
	if (!queue)
		return NULL;
	return queue->tail ? queue->tail->data : NULL;
}

/* Walks the free blocks and merges neighbours into larger blocks. */
static void coalesce(struct heap *h)
{
	struct block *b;
	/* merge each block with the one right after it when both are free */
	for (b = h->first; b && b->next; b = b->next)
		merge(b);
}
C
cat > "$TMP/cpp/geo/sphere.cpp" <<'CPP'
namespace geo {
/// Returns the distance between two points on a sphere in kilometres.
/// \param a the first point
double haversine(Point a, Point b) {
  double d = a.lat - b.lat;
  return d * 6371.0;
}

//! \brief Rounds every coordinate of the shape to the nearest grid cell.
//! \param grid the grid size
void Shape::snap(double grid) {
  for (auto &p : pts_)
    p = round(p / grid) * grid;
}
}
CPP
cat > "$TMP/java/org/example/Cache.java" <<'JAVA'
package org.example;

public class Cache {
    /**
     * Removes every entry whose time to live has passed.
     * <p>Runs in linear time.
     * @param now the current time
     * @return the number removed
     */
    public int evictExpired(long now) {
        int n = 0;
        n += now > 0 ? 1 : 0;
        return n;
    }

    /**
     * {@inheritDoc}
     */
    @Override
    public String toString() {
        String s = "Cache";
        return s;
    }
}
JAVA
cat > "$TMP/ts/src/duration.ts" <<'TS'
/**
 * Parses a duration such as 1h30m into a number of seconds.
 * @param text the duration
 */
export function parseDuration(text: string): number {
  const m = /(\d+)h/.exec(text);
  return m ? Number(m[1]) * 3600 : 0;
}
TS
queries() { pairs_json "$1" | python3 -c 'import json,sys; print("|".join(sorted(json.loads(l)["query"] for l in sys.stdin)))'; }
bp tree --lang c --repo cfix --root "$TMP/c" --out "$TMP/c.jsonl.gz" 2>/dev/null
ok $? "build-pairs tree runs on a C tree"
is "$(queries "$TMP/c.jsonl.gz")" \
	"Counts the entries that are kept in a linked list|Join two chains of nodes into the first one|Looks at the item at the back of a GQueue without removing it|Walks the free blocks and merges neighbours into larger blocks" \
	"C: Doxygen @brief, kernel-doc 'name() - text', gtk-doc 'name:' + @arg lines and a plain comment give their sentences, tags cut"
bp tree --lang cpp --repo cppfix --root "$TMP/cpp" --out "$TMP/cpp.jsonl.gz" 2>/dev/null
is "$(queries "$TMP/cpp.jsonl.gz")" \
	"Returns the distance between two points on a sphere in kilometres|Rounds every coordinate of the shape to the nearest grid cell" \
	"C++: /// and //! comments, \\brief and \\param cut"
bp tree --lang java --repo javafix --root "$TMP/java" --out "$TMP/java.jsonl.gz" 2>/dev/null
is "$(queries "$TMP/java.jsonl.gz")" "Removes every entry whose time to live has passed" \
	"Java: Javadoc's first sentence (<p> and @tags cut); {@inheritDoc} is no query"
bp tree --lang typescript --repo tsfix --root "$TMP/ts" --out "$TMP/ts.jsonl.gz" 2>/dev/null
is "$(queries "$TMP/ts.jsonl.gz")" "Parses a duration such as 1h30m into a number of seconds" \
	"TypeScript: TSDoc's first sentence, @param cut"
# the text of a new language's pair is the loader's --strip-docs embed_text too
"$CODEVEC_LOAD" --jsonl -q --strip-docs "$TMP/java" > "$TMP/jstrip.jsonl"
want=$(python3 -c '
import json, sys
for l in open(sys.argv[1]):
    s = json.loads(l)
    if s["symbol"] == "evictExpired":
        print(json.dumps(s["embed_text"]))' "$TMP/jstrip.jsonl")
is "$(pairs_json "$TMP/java.jsonl.gz" | python3 -c 'import json,sys; print(json.dumps(json.loads(sys.stdin.readline())["text"]))')" \
	"$want" "Java: the pair's text is codevec-load --strip-docs's embed_text of evictExpired"

# --- query styles: identifier-free rewrites, comment lines, StaQC
field() { pairs_json "$1" | python3 -c 'import json,sys
for l in sys.stdin:
    p = json.loads(l)
    if p["query"].startswith(sys.argv[1]): print(p.get(sys.argv[2], "-"))' "$2" "$3"; }
is "$(field "$TMP/py.jsonl.gz" Reads query_idfree)" "Reads the settings at into a dictionary of options" \
	"idfree: parse_config_file's query without the words of its identifiers (file, path)"
is "$(field "$TMP/c.jsonl.gz" Counts query_idfree)" "The entries that are kept in a linked" \
	"idfree: list_count's query without count(s) and list"
is "$(field "$TMP/c.jsonl.gz" Looks query_idfree)" "-" \
	"idfree: no rewrite when no word is an identifier's"
is "$(pairs_json "$TMP/c.jsonl.gz" | python3 -c 'import json,sys; print(sorted({json.loads(l)["style"] for l in sys.stdin}))')" \
	"['doc']" "without --comments every pair is style doc"
bp tree --lang c --repo cfix --root "$TMP/c" --out "$TMP/cc.jsonl.gz" --comments 2>/dev/null
is "$(field "$TMP/cc.jsonl.gz" Merge style)" "comment" \
	"--comments: coalesce's inner comment above code is a style comment pair"
is "$(pairs_json "$TMP/cc.jsonl.gz" | python3 -c 'import json,sys; print(sum(json.loads(l)["style"] == "comment" for l in sys.stdin))')" \
	1 "--comments: one comment pair (the doc comments and code-only functions give none)"
ctext=$(pairs_json "$TMP/cc.jsonl.gz" | python3 -c 'import json,sys
for l in sys.stdin:
    p = json.loads(l)
    if p["style"] == "comment": print(json.dumps(p["text"]))')
case $ctext in *"merge each block"*) ok 1 "the comment pair's text leaves its comment out" ;;
	*"merge(b)"*) ok 0 "the comment pair's text leaves its comment out (and keeps the code)" ;;
	*) ok 1 "the comment pair's text keeps the code" ;; esac

# --- StaQC (style so) and the out-of-distribution exclusions, on a
# StaQC-shaped fixture (every file at the pinned repository's paths, made
# here: the real pickles are not on this machine)
SQ="$TMP/staqc"
mkdir -p "$SQ/data/data_hnn/python/train" "$SQ/data/data_hnn/python/valid" "$SQ/data/data_hnn/python/test" \
	"$SQ/annotation_tool/data/code_solution_labeled_data/source" \
	"$SQ/annotation_tool/crowd_sourcing/python_annotator" "$SQ/final_collection"
python3 - "$SQ" <<'PY'
import os, pickle, sys
d = sys.argv[1]
dump = lambda rel, o: pickle.dump(o, open(os.path.join(d, rel), 'wb'), protocol=2)
h = 'data/data_hnn/python/'
dump(h + 'train/iids.pickle', {(1, 0), (1, 1)})
dump(h + 'valid/iids.pickle', {(3, 0), (3, 1), (6, 0)})
dump(h + 'test/iids.pickle', {(4, 0), (4, 1)})
# labels: (3, 1) and (6, 0) are no solution; question 6 has none, so it is no query
dump('annotation_tool/crowd_sourcing/python_annotator/all_agreed_iid_to_label.pickle',
     {(1, 0): 1, (1, 1): 0, (3, 0): 1, (3, 1): 0, (6, 0): 0, (4, 0): 1, (4, 1): 1})
open(os.path.join(d, 'final_collection/python_multi_code_iids.txt'), 'w').write(
    '(1, 0)\n(2, 0)\n(2, 1)\n(3, 0)\n(4, 0)\n(4, 1)\n(5, 0)\n(8, 0)\n(9, 0)\n')
src = 'annotation_tool/data/code_solution_labeled_data/source/'
dump(src + 'python_how_to_do_it_by_classifier_multiple_iid_to_code.pickle',
     {(1, 0): "import os\nprint(os.listdir('.'))", (1, 1): 'ls -l\n# output',
      (2, 0): 'x = {1: 2}\nprint(sorted(x.items(), key=lambda kv: kv[1]))', (2, 1): 'print x\nprint y',
      (3, 0): 'a, b = b, a\nprint(a)', (3, 1): '>>> a\n2', (6, 0): 'pip install foo\nfoo',
      (4, 0): 'def read_lines(path):\n    with open(path) as f:\n        return f.readlines()',
      (4, 1): 'for line in open(p):\n    print(line)',
      (5, 0): 'z = [0] * n',
      (8, 0): 'for line in open(p):\n    print(line)',
      (9, 0): "import os\nprint(os.listdir('.'))"})
dump(src + 'python_how_to_do_it_by_classifier_multiple_qid_to_title.pickle',
     {1: 'How to list the files of a directory', 2: u'Sort a dict by its values \u2013 fast',
      3: 'Swap two variables in place', 4: 'Read a file line by line', 5: 'Make a list of zeros',
      6: 'Install a package', 8: 'Print every line of a file', 9: 'Show the files in a folder'})
dump(src + 'python_how_to_do_it_qid_by_classifier_unlabeled_single_code_answer_qid_to_code.pickle',
     {7: 'import json\ndata = json.load(open(name))', 4: 'print(open(p).read())'})
dump(src + 'python_how_to_do_it_qid_by_classifier_unlabeled_single_code_answer_qid_to_title.pickle',
     {7: 'Parse a JSON file into a dict', 4: 'Read a file line by line'})
PY
OOD="$TMP/oodcache"
CODEVEC_OOD_CACHE=$OOD CODEVEC_LOAD=$CODEVEC_LOAD python3 "$ROOT/bench/quality/ood/fetch.py" staqc --from "$SQ" --tree "$TMP/sqtree" >"$TMP/sqfetch.out" 2>&1
[ $? -ne 0 ] && grep -q 'iids.pickle: sha256 .*, expected' "$TMP/sqfetch.out"
ok $? "fetch.py staqc: files that are not the pinned ones stop it (exit 1, the file named)"
CODEVEC_OOD_CACHE=$OOD CODEVEC_LOAD=$CODEVEC_LOAD python3 "$ROOT/bench/quality/ood/fetch.py" staqc --unpinned --from "$SQ" --tree "$TMP/sqtree" >"$TMP/sqfetch.out" 2>&1
ok $? "fetch.py staqc --unpinned runs on the fixture"
is "$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
code = {s["cid"]: s["code"].split("\n")[0] for s in d["corpus"]}
print(d["unpinned"], len(d["corpus"]), "|".join("%s:%s=%s" % (sp, q["query"], "+".join(code[t] for t in q["targets"])) for sp in ("dev", "test") for q in d[sp]))' "$OOD/staqc.json")" \
	"True 5 dev:Swap two variables in place=a, b = b, a|test:Read a file line by line=def read_lines(path):+for line in open(p):" \
	"fetch.py staqc: dev = valid questions, test = test questions, targets = their label-1 snippets; the corpus holds every annotated snippet of both (5)"
# StaQC from CodeXGLUE's copy (fetch.py staqc --codexglue): a fixture in its layout
CX="$TMP/codexglue/Text-Code/NL-code-search-WebQuery/data"
mkdir -p "$CX"
python3 - "$CX" <<'PY'
import json, sys
d = sys.argv[1]
row = lambda i, doc, code, label=None: dict(idx=i, doc=doc, code=code, **({} if label is None else {'label': label}))
json.dump([row(1, 'Swap two  variables', 'a, b = b, a\n', 1), row(2, 'Swap two  variables', 't = a\n', 0),
           row(3, 'Sort a dict by value', 'sorted(d.items(), key=lambda kv: kv[1])\n', 1),
           row(4, 'Sort a dict by value', 'def by_value(d):\n    return sorted(d, key=d.get)\n', 1),
           row(5, 'Flatten a list', 'print(x)\n', 0)], open(d + '/dev_staqc.json', 'w'))
json.dump([row(1, 'Read a file', 'open(p).read()\n'), row(2, 'Sort a dict by value', 'dict(sorted(d.items()))\n')],
          open(d + '/test_staqc.json', 'w'))
json.dump([row(1, 'Remove duplicates from a list keeping order', 'seen = set()\nout = [x for x in xs if not (x in seen or seen.add(x))]\n', 1),
           row(2, 'Remove duplicates from a list keeping order', 'list(dict.fromkeys(xs))\nprint(out)\n', 1),
           row(3, 'Count words in a string', 'import collections\ncollections.Counter(s.split())\n', 0),
           row(4, 'Sort a dict by value', 'for k in sorted(d, key=d.get):\n    print(k)\n', 1),
           row(5, 'Merge two dicts', 'z = dict(x)\nz.update(y)\n', 1),
           row(6, 'Join paths', 'os.path.join(a, b)\n', 1)], open(d + '/train_staqc.json', 'w'))
PY
CODEVEC_OOD_CACHE=$TMP/cxcache python3 "$ROOT/bench/quality/ood/fetch.py" staqc --codexglue --from "$TMP/codexglue" >"$TMP/cxfetch.out" 2>&1
[ $? -ne 0 ] && grep -q 'dev_staqc.json: sha256 .*, expected' "$TMP/cxfetch.out"
ok $? "fetch.py staqc --codexglue: files that are not the pinned ones stop it (exit 1, the file named)"
CODEVEC_OOD_CACHE=$TMP/cxcache python3 "$ROOT/bench/quality/ood/fetch.py" staqc --codexglue --unpinned --from "$TMP/codexglue" >"$TMP/cxfetch.out" 2>&1
ok $? "fetch.py staqc --codexglue --unpinned runs on the fixture"
is "$(python3 -c '
import hashlib, json, sys
d = json.load(open(sys.argv[1]))
code = {s["cid"]: s["code"].split("\n")[0] for s in d["corpus"]}
qs = sorted((q["query"], sp, "+".join(code[t] for t in q["targets"])) for sp in ("dev", "test") for q in d[sp])
half = lambda t: "dev" if hashlib.sha256(t.encode()).digest()[0] % 2 == 0 else "test"
print(len(d["corpus"]), all(sp == half(t) for t, sp, _ in qs), "|".join("%s=%s" % (t, c) for t, _, c in qs))' "$TMP/cxcache/staqc.json")" \
	"6 True Sort a dict by value=sorted(d.items(), key=lambda kv: kv[1])+def by_value(d):|Swap two variables=a, b = b, a" \
	"fetch.py staqc --codexglue: questions with a label-1 snippet, halved by sha256(title), targets their label-1 snippets; the corpus holds every snippet of both files (6) but the test file's unlabelled ones of a query's question (1)"
is "$(head -1 "$TMP/sqtree/s0.py")|$(head -1 "$TMP/sqtree/s3.py")|$(sed -n 2p "$TMP/sqtree/s4.py")" \
	"def snippet():|def read_lines(path):|    for line in open(p):" \
	"fetch.py --tree: statements are wrapped in def snippet(), a definition is written as it is"
grep -q 'give no snippet' "$TMP/sqfetch.out"; ok $? "fetch.py --tree says how many files give no snippet"

bp staqc --staqc "$SQ" --staqc-unpinned --out "$TMP/so.jsonl.gz" 2>"$TMP/so.err"
ok $? "build-pairs staqc runs on the fixture"
is "$(pairs_json "$TMP/so.jsonl.gz" | python3 -c 'import json,sys; print("|".join(sorted(json.loads(l)["query"] + "@" + json.loads(l)["style"] for l in sys.stdin)))')" \
	"How to list the files of a directory@so|Parse a JSON file into a dict@so|Print every line of a file@so|Sort a dict by its values – fast@so" \
	"staqc: one so pair per training question (multi-code and single-code answers, UTF-8 titles); valid/test questions (3, 4, 6), one-line code (5) and a copy of question 1's code (9) are not pairs"
grep -q "'question in the valid/test split': 2" "$TMP/so.err"; ok $? "staqc: the 2 valid/test questions of the collection (3, 4; also single-code 4) are left out of training"
grep -q "'duplicate code': 1" "$TMP/so.err"; ok $? "staqc: the same code under another question is kept once"
bp staqc --staqc-codexglue "$TMP/codexglue" --staqc-unpinned --out "$TMP/socx.jsonl.gz" 2>"$TMP/socx.err"
ok $? "build-pairs staqc --staqc-codexglue runs on the fixture"
is "$(pairs_json "$TMP/socx.jsonl.gz" | python3 -c 'import json,sys; print("|".join(sorted(json.loads(l)["query"] + "@" + json.loads(l)["style"] + "=" + json.loads(l)["text"].split("\n")[-1].strip() for l in sys.stdin)))')" \
	"Merge two dicts@so=z.update(y)|Remove duplicates from a list keeping order@so=out = [x for x in xs if not (x in seen or seen.add(x))]" \
	"staqc --staqc-codexglue: one so pair per training question, its first label-1 snippet; label 0 (3), a valid question's title (4) and one-line code (6) are not pairs"
grep -q "'question in the valid/test split': 1" "$TMP/socx.err"; ok $? "staqc --staqc-codexglue: a title of the valid split is left out of training"
# the text: the loader's own --strip-docs embed_text of the wrapped snippet, without the file's number
mkdir -p "$TMP/sqone"
printf 'def snippet():\n    import json\n    data = json.load(open(name))\n' > "$TMP/sqone/answer.py"
want=$("$CODEVEC_LOAD" --jsonl -q --strip-docs "$TMP/sqone" | python3 -c 'import json,sys; t = json.loads(sys.stdin.readline())["embed_text"].split("\n"); t[0] = t[0][len("answer "):]; t[1] = t[1][len("answer."):]; print(json.dumps("\n".join(t)))')
is "$(pairs_json "$TMP/so.jsonl.gz" | python3 -c 'import json,sys
for l in sys.stdin:
    p = json.loads(l)
    if p["query"].startswith("Parse"): print(json.dumps(p["text"]))')" "$want" \
	"staqc: the text is codevec-load --strip-docs's embed_text of the snippet inside def snippet(), no file name in it"

# merge --exclude-ood: CoSQA's code base and queries, StaQC's dev/test code and titles
python3 - "$OOD" "$TMP" <<'PY'
import gzip, json, sys
ood, tmp = sys.argv[1:3]
corpus = [dict(cid=0, code='def tail(path, n=10):\n    """Last lines."""\n    with open(path) as f:\n        return f.readlines()[-n:]'),
          dict(cid=1, code='def other():\n    return 1')]
json.dump(dict(name='cosqa', dev=[dict(qid='d1', query='python get last n lines of a file', targets=[0])],
               test=[], corpus=corpus), open(ood + '/cosqa.json', 'w'))
p = lambda **k: json.dumps(dict(dict(language='python', repo='r', style='doc'), **k)) + '\n'
with gzip.open(tmp + '/pk.jsonl.gz', 'wt') as f:
    # the same code as CoSQA's c0 in another file (the name lines differ), its comment pair too
    f.write(p(query='Returns the end of a log file', fn='f1',
              text='tail\nlogs.tail\ndef tail(path, n=10)\ndef tail(path, n=10):\n    with open(path) as f:\n        return f.readlines()[-n:]'))
    f.write(p(query='Opens the log and reads it', fn='f1', style='comment',
              text='tail\nlogs.tail\ndef tail(path, n=10)\ndef tail(path, n=10):\n    return 0'))
    # a query that is CoSQA's (case and punctuation aside)
    f.write(p(query='Python: get last N lines of a file!', fn='f2', text='head\nm.head\ndef head()\ndef head():\n    pass'))
    # a title that is one of StaQC's test questions
    f.write(p(query='Read a file line by line', fn='f3', text='g\nm.g\ndef g()\ndef g():\n    pass'))
    f.write(p(query='Counts the words of a text', fn='f4', text='wc\nm.wc\ndef wc(t)\ndef wc(t):\n    return len(t.split())'))
PY
bp merge "$TMP/pk.jsonl.gz" "$TMP/so.jsonl.gz" --exclude-ood "$OOD" --out "$TMP/mo.jsonl.gz" --stats "$TMP/mo.json" 2>"$TMP/mo.err"
ok $? "merge --exclude-ood runs"
is "$(pairs_json "$TMP/mo.jsonl.gz" | python3 -c 'import json,sys; print("|".join(json.loads(l)["query"] for l in sys.stdin))')" \
	"Counts the words of a text|How to list the files of a directory|Parse a JSON file into a dict|Sort a dict by its values – fast" \
	"merge --exclude-ood: CoSQA's code (in another file, docstring aside) with its function's comment pair, a CoSQA query, a StaQC test title and a so pair whose code is a StaQC test answer's are left out"
is "$(python3 -c 'import json,sys; d = json.load(open(sys.argv[1])); print(d["excluded"], d["why"])' "$TMP/mo.json")" \
	"5 {'ood code/python/doc': 1, 'ood code/python/so': 1, 'ood query/python/doc': 2}" "merge --exclude-ood: its stats say what was left out and why"

# --- train.py on the tiny BERT fixture (CPU): mining, mixture options, the
# time limit, the float16 save; skipped where torch is not installed
# (TRAIN_PYTHON: a python with torch + transformers + safetensors)
TPY=${TRAIN_PYTHON:-python3}
SKIP=0
if "$TPY" -c 'import torch, transformers, safetensors' 2>/dev/null; then
	"$TPY" - "$ROOT" "$TMP" <<'PY' > "$TMP/train.out" 2>"$TMP/train.err"
import gzip, importlib.util, json, os, random, subprocess, sys, types
root, tmp = sys.argv[1:3]
spec = importlib.util.spec_from_file_location('train', os.path.join(root, 'tools/train-model/train.py'))
tr = importlib.util.module_from_spec(spec); spec.loader.exec_module(tr)
devrepo = next(r for r in ('pdf.js', 'go-github-a', 'x1', 'x2', 'x3', 'x4', 'x5', 'x6', 'x7', 'x8',
                           'x9', 'x10', 'x11', 'x12', 'x13', 'x14', 'x15', 'x16', 'x17', 'x18',
                           'x19', 'x20', 'x21', 'x22', 'x23', 'x24', 'x25') if tr.is_dev(r))
words = 'read write parse sort merge split join open close send receive hash'.split()
pairs = []
for i in range(60):
    repo = devrepo if i % 6 == 0 else 'repo%d/part%d' % (i % 5, i % 2)
    w = words[i % len(words)]
    pairs.append(dict(language='c', repo=repo, style='doc', fn='f%d' % i,
                      query='%s the items of list %d' % (w, i), query_idfree='the items %d' % i,
                      text='void %s_%d(struct list *l) { %s(l, %d); }' % (w, i, w, i)))
# a comment pair of function f1 (same fn, another text): never f1's negative
pairs.append(dict(language='c', repo='repo1/part1', style='comment', fn='f1',
                  query='walk the list once', text='void read_1(struct list *l) { }'))
path = os.path.join(tmp, 'tp.jsonl.gz')
with gzip.open(path, 'wt') as f:
    for p in pairs:
        f.write(json.dumps(p) + '\n')
fix = os.path.join(root, 'test/embed/fixtures/tiny-bert')
train = [p for p in pairs if not tr.is_dev(p['repo'])]
tok = tr.AutoTokenizer.from_pretrained(fix)
model = tr.AutoModel.from_pretrained(fix).float()
args = types.SimpleNamespace(mine_range='1,5', hard_negatives=2, seed=1, query_len=32, text_len=64)
negs, stats = tr.mine(model, tok, train, tr.torch.device('cpu'), args)
bad = sum(1 for i, ns in enumerate(negs) for k in ns
          if k == i or train[k]['fn'] == train[i]['fn'] or train[k]['query'] == train[i]['query'])
print('mine', len(negs) == len(train), all(len(n) == 2 for n in negs), bad, stats['negatives'])
def run(out, *extra):
    return subprocess.run([sys.executable, os.path.join(root, 'tools/train-model/train.py'),
                           '--base', fix, '--pairs', path, '--out', out, '--epochs', '1',
                           '--batch', '8', '--query-len', '32', '--text-len', '64',
                           '--dtype', 'float16', *extra], capture_output=True, text=True)
r = run(os.path.join(tmp, 'm1'), '--hard-negatives', '1', '--mine-range', '1,5',
        '--idfree', '0.5', '--styles', 'doc,comment')
h = json.load(open(os.path.join(tmp, 'm1', 'train-log.json'))) if r.returncode == 0 else {}
with open(os.path.join(tmp, 'm1', 'model.safetensors'), 'rb') as f:
    n = int.from_bytes(f.read(8), 'little'); head = json.loads(f.read(n))
dtypes = sorted({v['dtype'] for k, v in head.items() if k != '__metadata__'})
print('run', r.returncode, h.get('mining', {}).get('negatives'), h.get('train_pairs'),
      h.get('dev_pairs'), ','.join(dtypes), 'stopped' in h)
# many epochs, so the 1 s limit is reached however fast this machine is
r2 = run(os.path.join(tmp, 'm2'), '--max-seconds', '1', '--styles', 'doc', '--epochs', '1000')
h2 = json.load(open(os.path.join(tmp, 'm2', 'train-log.json'))) if r2.returncode == 0 else {}
print('limit', r2.returncode, 'stopped' in h2, h2.get('train_pairs'))
PY
	ok $? "train.py smoke test runs (tiny BERT, CPU)"
	read -r _ m_all m_two m_bad m_n < <(grep '^mine' "$TMP/train.out")
	is "$m_all $m_two $m_bad" "True True 0" \
		"mining: every training pair gets 2 negatives, none its own text, function (fn) or query"
	read -r _ r_rc r_neg r_train r_dev r_dt r_stop < <(grep '^run' "$TMP/train.out")
	is "$r_rc $r_neg $r_train $r_dev $r_dt $r_stop" "0 51 51 10 F16 False" \
		"train.py --hard-negatives 1: one negative per training pair (50 doc + 1 comment), dev = the held-out package's 10 doc pairs, float16 weights"
	read -r _ l_rc l_stop l_train < <(grep '^limit' "$TMP/train.out")
	is "$l_rc $l_stop $l_train" "0 True 50" "train.py --max-seconds 1 stops and still saves; --styles doc leaves the comment pair out"
	# checkpoints chosen on a kit's OOD dev halves (--ood-kit), --cap, --mine-with;
	# the OOD score against eval-models.py's own ranking of the same model
	"$TPY" - "$ROOT" "$TMP" <<'PY' > "$TMP/ood.out" 2>"$TMP/ood.err"
import gzip, importlib.util, json, os, subprocess, sys
root, tmp = sys.argv[1:3]
fix = os.path.join(root, 'test/embed/fixtures/tiny-bert')
words = 'read write parse sort merge split join open close send receive hash'.split()
sn = [[100 + i, 'def %s_%d(items):\n    return %s(items, %d)' % (w, i, w, i)]
      for i, w in enumerate(words * 2)]
qs = lambda bench, lang: [dict(qid='%s%d' % (bench, i), language=lang, split='dev' if i % 3 else 'test',
                               query='%s the list %d' % (words[i % 12], i), targets=[100 + i],
                               kw=[100 + (i + 1) % 24]) for i in range(24)]
kit = dict(created='t', commit='t', groups=[
    dict(benchmark='public', name='public', snippets=sn, queries=qs('public', 'go')),
    dict(benchmark='cosqa', name='cosqa', snippets=sn, queries=qs('cosqa', 'python')),
    dict(benchmark='hand', name='hand-x', snippets=sn[:12], queries=qs('hand', 'c')[:12])])
with gzip.open(os.path.join(tmp, 'kit.json.gz'), 'wt') as f:
    json.dump(kit, f)
# eval-models.py on the kit (the starting model): vector MRR@10 of the dev cells
r = subprocess.run([sys.executable, os.path.join(root, 'bench/quality/ood/eval-models.py'),
                    os.path.join(tmp, 'kit.json.gz'), fix, '--backend', 'torch',
                    '--only', 'cosqa,hand', '--out', os.path.join(tmp, 'ev.json')],
                   capture_output=True, text=True)
ev = json.load(open(os.path.join(tmp, 'ev.json')))
cells = {}
for g in ev['models'][fix]:
    for q in g['queries']:
        if q['split'] == 'dev':
            cells.setdefault((g['benchmark'], q['language']), []).append(
                1 / q['vector'] if 0 < q['vector'] <= 10 else 0.0)
ref = sum(sum(v) / len(v) for v in cells.values()) / len(cells)
pairs = [dict(language='c', repo='repo%d' % (i % 5), style='so' if i % 2 else 'doc', fn='f%d' % i,
              query='%s the items of list %d' % (words[i % 12], i),
              text='void %s_%d(struct list *l) { %s(l, %d); }' % (words[i % 12], i, words[i % 12], i))
         for i in range(60)]
with gzip.open(os.path.join(tmp, 'op.jsonl.gz'), 'wt') as f:
    for p in pairs:
        f.write(json.dumps(p) + '\n')
t = subprocess.run([sys.executable, os.path.join(root, 'tools/train-model/train.py'), '--base', fix,
                    '--pairs', os.path.join(tmp, 'op.jsonl.gz'), '--out', os.path.join(tmp, 'm3'),
                    '--epochs', '2', '--batch', '8', '--lr', '1e-3', '--query-len', '32',
                    '--text-len', '64', '--styles', 'doc,so', '--cap', 'so=10',
                    '--hard-negatives', '1', '--mine-range', '1,5', '--mine-with', fix,
                    '--ood-kit', os.path.join(tmp, 'kit.json.gz'), '--eval-every', '2'],
                   capture_output=True, text=True)
h = json.load(open(os.path.join(tmp, 'm3', 'train-log.json'))) if t.returncode == 0 else {}
o = h.get('ood_dev_mrr10', {})
scores = {k: v['macro'] for k, v in o.items()}
print('ref', r.returncode, t.returncode, round(ref, 4) == o.get('0', {}).get('macro'),
      sorted(set(k.split('/')[0] for k in o.get('0', {}).get('cells', {}))) == ['cosqa', 'hand'],
      h.get('ood_dev_queries') == {'cosqa': 16, 'hand': 8})
print('cap', h.get('train_pairs'), h.get('mixture'), h.get('mining', {}).get('model') == fix)
best = max(scores.values()) if scores else None
print('chosen', h.get('chosen', {}).get('score') == best, any(k.startswith('step') for k in scores),
      h.get('chosen', {}).get('by'))
sys.stderr.write(t.stdout[-3000:] + t.stderr[-3000:] + r.stderr[-2000:])
PY
	ok $? "train.py --ood-kit smoke test runs (tiny BERT, CPU)"
	read -r _ o_ev o_tr o_same o_cells o_n < <(grep '^ref' "$TMP/ood.out")
	is "$o_ev $o_tr $o_same $o_cells $o_n" "0 0 True True True" \
		"--ood-kit: the starting model's OOD dev macro MRR@10 equals eval-models.py's vector ranks (cosqa and hand dev cells; public and test halves never read)"
	is "$(grep '^cap' "$TMP/ood.out")" "cap 40 {'c/doc': 30, 'c/so': 10} True" \
		"--cap so=10 keeps 10 of the 30 so pairs, all 30 doc pairs; --mine-with mines with the given folder"
	is "$(grep '^chosen' "$TMP/ood.out")" "chosen True True OOD dev macro MRR@10" \
		"--ood-kit: the checkpoint kept is the best OOD dev macro of every epoch and every --eval-every steps"
else
	N=$((N + 1)); SKIP=$((SKIP + 1))
	echo "ok $N - train.py smoke test # SKIP torch/transformers not installed (TRAIN_PYTHON)"
fi

# --- the re-ranker (issue 14, item 5): rerank-eval.py's pair encoding
# against the tokenizer's own pair encoding, its hybrid ranks against
# eval-models.py's, and train-reranker.py on the tiny BERT fixture (CPU)
if "$TPY" -c 'import torch, transformers, safetensors' 2>/dev/null; then
	"$TPY" - "$ROOT" "$TMP" <<'PY' > "$TMP/rr.out" 2>"$TMP/rr.err"
import gzip, importlib.util, json, os, subprocess, sys
root, tmp = sys.argv[1:3]
spec = importlib.util.spec_from_file_location('rerank_eval', os.path.join(root, 'bench/quality/ood/rerank-eval.py'))
re_ = importlib.util.module_from_spec(spec); spec.loader.exec_module(re_)
fix = os.path.join(root, 'test/embed/fixtures/tiny-bert')
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(fix)
ce = re_.CrossEncoder(None, model=object(), tok=tok)
words = 'read write parse sort merge split join open close send receive hash'.split()
short = ['read the list', 'open a file and sort its lines']
texts = ['def read(items):\n    return items', ' '.join(words * 40)]
b = ce.encode(short, texts)
ref = tok(short, texts, truncation='only_second', max_length=256, padding=True, return_tensors='pt')
same = all((b[k].cpu() == ref[k]).all().item() for k in ('input_ids', 'token_type_ids', 'attention_mask'))
longq = ' '.join(words * 10)
b2 = ce.encode([longq], [texts[1]])
qi = tok(longq, add_special_tokens=False)['input_ids']
ids = b2['input_ids'][0].tolist()
cut = ids[1:65] == qi[:64] and ids[65] == tok.sep_token_id and len(ids) == 256 \
    and b2['token_type_ids'][0].tolist() == [0] * 66 + [1] * 190
print('encode', same, cut)
# a kit: hybrid under the fixture (rerank-eval) against eval-models.py's 2/0.5 ranks
sn = [[100 + i, 'def %s_%d(items):\n    return %s(items, %d)' % (w, i, w, i)]
      for i, w in enumerate(words * 2)]
qs = [dict(qid='c%d' % i, language='python', split='dev' if i % 3 else 'test',
           query='%s the list %d' % (words[i % 12], i), targets=[100 + i],
           kw=[100 + (i + 1) % 24, 100 + i]) for i in range(24)]
kit = dict(created='t', commit='t', groups=[dict(benchmark='cosqa', name='cosqa', snippets=sn, queries=qs)])
with gzip.open(os.path.join(tmp, 'rkit.json.gz'), 'wt') as f:
    json.dump(kit, f)
ev = subprocess.run([sys.executable, os.path.join(root, 'bench/quality/ood/eval-models.py'),
                     os.path.join(tmp, 'rkit.json.gz'), fix, '--backend', 'torch',
                     '--out', os.path.join(tmp, 'rev.json')], capture_output=True, text=True)
evr = {q['qid']: q for g in json.load(open(os.path.join(tmp, 'rev.json')))['models'][fix] for q in g['queries']}
pairs = [dict(language='python', repo='repo%d' % (i % 5), style='doc', fn='f%d' % i,
              query='%s the items of list %d' % (words[i % 12], i),
              text='def %s_%d(items):\n    return %s(items, %d)' % (words[i % 12], i, words[i % 12], i))
         for i in range(48)]
with gzip.open(os.path.join(tmp, 'rp.jsonl.gz'), 'wt') as f:
    for p in pairs:
        f.write(json.dumps(p) + '\n')
t = subprocess.run([sys.executable, os.path.join(root, 'tools/train-model/train-reranker.py'),
                    '--base', fix, '--pairs', os.path.join(tmp, 'rp.jsonl.gz'),
                    '--out', os.path.join(tmp, 'ce'), '--kit', os.path.join(tmp, 'rkit.json.gz'),
                    '--batch', '4', '--group', '3', '--mine-range', '1,6', '--webq', '0',
                    '--idfree', '0', '--lr', '1e-3', '--epochs', '2', '--eval-every', '5',
                    '--depth', '5'], capture_output=True, text=True)
h = json.load(open(os.path.join(tmp, 'ce', 'train-log.json'))) if t.returncode == 0 else {}
hy = h.get('hybrid_dev', {}).get('macro')
dev = [q for q in evr.values() if q['split'] == 'dev']
ref = sum(1 / q['hybrid']['2/0.5'] if 0 < q['hybrid']['2/0.5'] <= 10 else 0 for q in dev) / len(dev)
cfg = json.load(open(os.path.join(tmp, 'ce', 'config.json'))) if t.returncode == 0 else {}
with open(os.path.join(tmp, 'ce', 'model.safetensors'), 'rb') as f:
    n = int.from_bytes(f.read(8), 'little'); head = json.loads(f.read(n))
dt = sorted({v['dtype'] for k, v in head.items() if k != '__metadata__'})
best = max(v['macro'] for v in h.get('evals', {}).values()) if h.get('evals') else None
print('train', ev.returncode, t.returncode, hy is not None and round(ref, 4) == hy,
      cfg.get('num_labels', len(cfg.get('id2label', {}))), ','.join(dt),
      h.get('chosen', {}).get('dev_macro') == best, h.get('used'))
# rerank-eval: hybrid ranks as eval-models.py's; depth 1 re-orders nothing
outs = []
for d in ('1', '5'):
    r = subprocess.run([sys.executable, os.path.join(root, 'bench/quality/ood/rerank-eval.py'),
                        os.path.join(tmp, 'rkit.json.gz'), fix, os.path.join(tmp, 'ce'), '--depth', d,
                        '--out', os.path.join(tmp, 'rr%s.json' % d)], capture_output=True, text=True)
    outs.append(json.load(open(os.path.join(tmp, 'rr%s.json' % d)))['groups'][0]['queries'] if r.returncode == 0 else [])
q1, q5 = outs
print('eval', len(q1) == 24 and all(q['hybrid'] == evr[q['qid']]['hybrid']['2/0.5'] and
                                    q['vector'] == (evr[q['qid']]['vector'] if evr[q['qid']]['vector'] <= 100 else 0)
                                    for q in q1),
      all(q['rerank:ce'] == q['hybrid'] for q in q1),
      all(q['rerank:ce'] == q['hybrid'] for q in q5 if q['hybrid'] > 5 or q['hybrid'] == 0),
      all(0 < q['rerank:ce'] <= 5 for q in q5 if 0 < q['hybrid'] <= 5))
sys.stderr.write(t.stdout[-3000:] + t.stderr[-3000:] + ev.stderr[-1000:])
PY
	ok $? "re-ranker smoke test runs (tiny BERT, CPU)"
	is "$(grep '^encode' "$TMP/rr.out")" "encode True True" \
		"rerank-eval.py's pairs are the tokenizer's own pair encoding (ids, token types, mask; text cut first), a long query cut to 64 word pieces"
	is "$(grep '^train' "$TMP/rr.out")" "train 0 0 True 1 F16 True 48" \
		"train-reranker.py: the hybrid dev MRR@10 it re-ranks equals eval-models.py's 2/0.5 ranks; one label, float16, the best dev checkpoint kept; all 48 training pairs with 2 mined negatives"
	is "$(grep '^eval' "$TMP/rr.out")" "eval True True True True" \
		"rerank-eval.py: hybrid and vector ranks as eval-models.py's; depth 1 re-orders nothing; depth 5 moves only the first 5"
else
	N=$((N + 1)); SKIP=$((SKIP + 1))
	echo "ok $N - re-ranker smoke test # SKIP torch/transformers not installed (TRAIN_PYTHON)"
fi

# merge: gzip and xz inputs, sorted; a pair whose query is one of bench/quality's
# queries (today's queries.tsv.gz, any case and punctuation) is left out
python3 - "$TMP" "$ROOT/bench/quality/queries.tsv.gz" <<'PY'
import gzip, json, lzma, sys
tmp, qpath = sys.argv[1], sys.argv[2]
with gzip.open(qpath, 'rt') as f:
    f.readline()
    bq = f.readline().rstrip('\n').split('\t')[7]
p = lambda q, t: json.dumps(dict(language='go', repo='r', query=q, text=t, style='doc')) + '\n'
with gzip.open(tmp + '/m1.jsonl.gz', 'wt') as f:
    f.write(p('Opens the store kept in a folder', 'func Open'))
    f.write(p(bq.upper() + ' !', 'func Leak'))
with lzma.open(tmp + '/m2.jsonl.xz', 'wt') as f:
    f.write(p('Closes every file the store holds open', 'func Close'))
PY
bp merge "$TMP/m1.jsonl.gz" "$TMP/m2.jsonl.xz" --out "$TMP/merged.jsonl.gz" 2>"$TMP/merge.err"
ok $? "build-pairs merge runs (gzip and xz inputs)"
is "$(pairs_json "$TMP/merged.jsonl.gz" | python3 -c 'import json,sys; print("|".join(json.loads(l)["text"] for l in sys.stdin))')" \
	"func Close|func Open" "merge keeps both files' pairs, sorted, and leaves out the one whose query is a benchmark query"
grep -q '1 left out: query in the benchmark' "$TMP/merge.err"; ok $? "merge says how many it left out"

# pieces.sh: files over one GPU call's carry, split into folders of at most N bytes and joined
mkdir -p "$TMP/pcs/model/1_Pooling"
head -c 250000 /dev/urandom > "$TMP/pcs/pairs.bin"
head -c 90000 /dev/urandom > "$TMP/pcs/model/model.safetensors"
echo '{}' > "$TMP/pcs/model/1_Pooling/config.json"
PCS="bash $ROOT/tools/train-model/pieces.sh"
$PCS split "$TMP/pc" 100000 "$TMP/pcs/pairs.bin" "$TMP/pcs/model" > "$TMP/pc.out"
ok $? "pieces.sh split runs"
big=$(for d in "$TMP"/pc/p*; do [ "$(cat "$d"/*.chunk-* | wc -c)" -le 100000 ] || echo "$d"; done)
is "$(ls "$TMP/pc" | wc -l) ${big:-none}" "5 none" "pieces.sh: 5 folders (250 kB, a 102 kB tar), none with more than 100000 bytes of chunks"
$PCS join "$TMP/pc" "$TMP/pj" > /dev/null && cmp -s "$TMP/pcs/pairs.bin" "$TMP/pj/pairs.bin" && diff -r "$TMP/pcs/model" "$TMP/pj/model" > /dev/null
ok $? "pieces.sh join gives back the same file and folder"
printf 'x' >> "$(ls "$TMP"/pc/p02/*.chunk-* | head -1)"
$PCS join "$TMP/pc" "$TMP/pj2" 2>"$TMP/pj2.err"
[ $? -ne 0 ] && grep -q 'sha256 .*, expected' "$TMP/pj2.err"; ok $? "pieces.sh join: a changed chunk stops it (sha256 named)"
rm -rf "$TMP/pc/p03"
$PCS join "$TMP/pc" "$TMP/pj3" 2>"$TMP/pj3.err"
[ $? -ne 0 ] && grep -q 'p03/.* missing' "$TMP/pj3.err"; ok $? "pieces.sh join: a folder not sent stops it (the chunk named)"

# sweep.sh keeps a NAME already trained (its train-log.json, which train.py
# writes last), so a device call that ran out of time can be repeated
SW="bash $ROOT/tools/train-model/sweep.sh"
mkdir -p "$TMP/sw/root/a" "$TMP/sw/root/b" "$TMP/sw/out1" "$TMP/sw/out2"
echo '{}' > "$TMP/sw/root/a/train-log.json"
echo '{}' > "$TMP/sw/root/b/train-log.json"
OUT="$TMP/sw/out1" $SW "$TMP/sw/no-base" "$TMP/sw/no-pairs.xz" "$TMP/sw/root" 10 a "--epochs 1" b "--epochs 2" > "$TMP/sw1.out" 2>&1
ok $? "sweep.sh: every NAME already trained: exits 0 without reading the pairs"
is "$(grep -c 'already trained .*, kept' "$TMP/sw1.out") $(ls "$TMP/sw/out1" | wc -l)" "2 0" \
	"sweep.sh: says which NAMEs it kept and starts no train.py (no train-NAME.log)"
echo '{"query": "q", "text": "t"}' | xz > "$TMP/sw/pairs.jsonl.xz"
OUT="$TMP/sw/out2" $SW "$TMP/sw/no-base" "$TMP/sw/pairs.jsonl.xz" "$TMP/sw/root" 10 a "--epochs 1" c "--epochs 1" > "$TMP/sw2.out" 2>&1
st=$?
is "$st $(grep -c 'a already trained' "$TMP/sw2.out") $(grep -c 'c failed' "$TMP/sw2.out") $(ls "$TMP/sw/out2")" \
	"1 1 1 train-c.log" "sweep.sh: a NAME not trained yet runs train.py (here it fails: no base), the kept one does not; exit 1"

# pack-out.sh: a call's $OUT made to fit what comes back (at most N files,
# each at most M bytes, plain names, two folders down); nothing lost
PO="bash $ROOT/tools/train-model/pack-out.sh"
# the files as "sha256  path" under a folder, rest.tar.xz unpacked first when there is one
sums() {
	local d=$1 x
	x=$(mktemp -d "$TMP/sums.XXXXXX")
	cp -r "$d/." "$x/"
	if [ -f "$x/rest.tar.xz" ]; then tar -xJf "$x/rest.tar.xz" -C "$x" && rm "$x/rest.tar.xz"; fi
	(cd "$x" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
}
mkdir -p "$TMP/po/few" "$TMP/po/many/sub/a/b"
for i in 1 2 3; do head -c $((i * 1000)) /dev/urandom > "$TMP/po/few/f$i.log"; done
$PO "$TMP/po/few" 8 100000 > "$TMP/po1.out"
is "$? $(ls "$TMP/po/few" | tr '\n' ' ')" "0 f1.log f2.log f3.log " "pack-out.sh: 3 files that come back are left as they are"
for i in $(seq 1 10); do head -c $((i * 3000)) /dev/urandom > "$TMP/po/many/r$i.json"; done
head -c 35000 /dev/urandom > "$TMP/po/many/sub/a/b/too-deep.log"
head -c 40000 /dev/urandom > "$TMP/po/many/odd name.md"
head -c 200000 /dev/urandom > "$TMP/po/many/big.bin"
sums "$TMP/po/many" > "$TMP/po-before.sums"
$PO "$TMP/po/many" 8 100000 > "$TMP/po2.out" 2> "$TMP/po2.err"
is "$? $(find "$TMP/po/many" -type f | wc -l)" "3 8" \
	"pack-out.sh: 13 files (one too deep, one oddly named, one too large) become 7 + rest.tar.xz; exit 3: the tar holds the too-large file"
grep -q 'rest.tar.xz is over 100000 bytes' "$TMP/po2.err"; ok $? "pack-out.sh: says when rest.tar.xz will not come back"
sums "$TMP/po/many" | cmp -s - "$TMP/po-before.sums"
ok $? "pack-out.sh: the kept files and rest.tar.xz's together are every file, byte for byte, at its path"
is "$(cd "$TMP/po/many" && ls | tr '\n' ' ')" "r10.json r4.json r5.json r6.json r7.json r8.json r9.json rest.tar.xz " \
	"pack-out.sh: the 7 largest files that can come back stay as they are (not the larger too-deep and oddly named ones)"
rm -rf "$TMP/po/many" && mkdir -p "$TMP/po/many/sub/a/b"
for i in $(seq 1 10); do head -c $((i * 3000)) /dev/urandom > "$TMP/po/many/r$i.json"; done
head -c 500 /dev/urandom > "$TMP/po/many/sub/a/b/too-deep.log"
sums "$TMP/po/many" > "$TMP/po-before2.sums"
$PO "$TMP/po/many" 8 100000 > "$TMP/po3.out"
is "$? $(find "$TMP/po/many" -type f | wc -l)" "0 8" "pack-out.sh: 11 files that fit once packed: exit 0, 8 files"
sums "$TMP/po/many" | cmp -s - "$TMP/po-before2.sums"
ok $? "pack-out.sh: nothing lost, the too-deep file's folders kept inside the tar"
$PO "$TMP/po/none" > /dev/null 2>&1
is "$?" 2 "pack-out.sh: a folder that does not exist is a usage error (exit 2)"

# interpolate.py (WiSE-FT weight mixing) and choose.py's fusion rule: test/trainset/mixcheck.py,
# in a venv of the pinned numpy and safetensors (PyPI; made once, kept in the cache)
VENV=${TRAINSET_TEST_VENV:-${HOME:-/root}/.cache/codevec/trainset-venv}
pinned_venv "$VENV" "$HERE/requirements.txt" "the pinned PyPI packages install (numpy, safetensors, tokenizers, psycopg: requirements.txt)"
mkdir -p "$TMP/mix"
# checks a Python script printed ("ok DESC" / "not ok DESC: DETAIL"), each
# counted here: checks NAME OUTFILE STATUS MIN [PREFIX]
checks() {
	local line
	ok "$3" "$1 runs to its end" "$2"
	while IFS= read -r line; do
		case $line in
		"ok "*) ok 0 "${5:-}${line#ok }" ;;
		"not ok "*) ok 1 "${5:-}${line#not ok }" ;;
		esac
	done <"$2"
	[ "$(grep -c '^ok \|^not ok ' "$2")" -ge "$4" ]; ok $? "$1 made all its checks"
}
"$VENV/bin/python" "$HERE/mixcheck.py" "$ROOT" "$TMP/mix" >"$TMP/mix.out" 2>&1
checks mixcheck.py "$TMP/mix.out" $? 36

# eval-models.py --backend codevec (OOD scoring through a server's embed(), no
# torch) against its numpy BERT pass: test/trainset/evalcheck.py, on the
# server of test/run.sh (PG* set; the default model installed by make model)
MAINTDB=${PGDATABASE:-postgres}
if psql -X -q -d "$MAINTDB" -c 'SELECT 1' >/dev/null 2>&1; then
	EDB=cv_evalcheck_$$
	psql -X -q -d "$MAINTDB" -c "CREATE DATABASE $EDB" >/dev/null &&
		psql -X -q -d "$EDB" -c "CREATE EXTENSION codevec" >/dev/null
	ok $? "scratch database $EDB with the extension"
	mkdir -p "$TMP/evc"
	PGDATABASE=$EDB "$VENV/bin/python" "$HERE/evalcheck.py" "$ROOT" "$TMP/evc" code-minilm-l6 >"$TMP/evc.out" 2>&1
	checks evalcheck.py "$TMP/evc.out" $? 3
	psql -X -q -d "$MAINTDB" -c "DROP DATABASE IF EXISTS $EDB" >/dev/null
else
	skip "eval-models.py --backend codevec against its numpy BERT pass" "no server (PG* unset; test/run.sh sets them)"
fi

# convex-fusion.py (score fusion against rank fusion, issue 27): its fused
# orders by hand and its report's cells against test/trainset/fusioncheck.py's own
mkdir -p "$TMP/fusion"
"$VENV/bin/python" "$HERE/fusioncheck.py" "$ROOT" "$TMP/fusion" >"$TMP/fusion.out" 2>&1
checks fusioncheck.py "$TMP/fusion.out" $? 13 "convex-fusion: "

# webquery.py, the rewrite train.py's --webq trains with (standard library only)
python3 "$HERE/webqcheck.py" "$ROOT" >"$TMP/webq.out" 2>&1
checks webqcheck.py "$TMP/webq.out" $? 20 "webquery: "

# the manifest: pinned, Debian only (binary or source packages, or one .orig of a source package), none of the benchmark's packages
python3 - "$ROOT/tools/train-model/packages.tsv" "$ROOT/bench/quality/manifest.tsv" <<'PY' > "$TMP/man.out"
import sys
rows = [l.rstrip('\n').split('\t') for l in open(sys.argv[1]) if not l.startswith('#') and l.strip()]
bench = {l.split('\t')[3] for l in open(sys.argv[2]) if not l.startswith('#') and l.strip()}
bad = [r[3] for r in rows if len(r) != 8 or r[2] not in ('deb', 'dsc', 'pool') or r[4] == '-' or len(r[5]) != 64]
print('rows', len(rows), 'unpinned', len(bad), 'in-benchmark', sorted(set(r[3] for r in rows) & bench))
PY
read -r _ nrows _ nbad _ inbench < "$TMP/man.out"
[ "$nrows" -ge 300 ]; ok $? "packages.tsv lists $nrows packages"
is "$nbad" 0 "every package is pinned (version and sha256)"
is "$inbench" "[]" "no package of the benchmark's manifest is a training package"

echo "$PASS passed, $FAIL failed, $SKIP skipped"
[ "$FAIL" -eq 0 ]
