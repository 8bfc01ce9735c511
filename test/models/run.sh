#!/usr/bin/env bash
# test/models/run.sh — the shipped model (models/code-minilm-l6, issue 14).
#
#   1. the files: every file of SHA256SUMS matches, the weights are F16
#      and at most 50,000,000 bytes, the references were made from these
#      weights and these strings (reference.json), and the 200 strings
#      cover what they should (code, questions, eight languages, non-ASCII);
#   2. tools/install-model.sh (`make model`) installs them offline into a
#      scratch folder and points "default" at them, and refuses, installing
#      nothing, a changed weight file, a Git LFS pointer and a missing file;
#   3. the C encoder (src/model.c, encoder.c via test/embed/test_real_model.c)
#      against sentence-transformers' embeddings of the 200 strings;
#   4. on the server: "default" is the shipped model (codevec_model_info()),
#      and embed(text) and embed(text[]) of the 200 strings against the same
#      references, cosine computed here in Python (float64), >= 0.99999 each
#      on the fp32 path (where codevec.cpu_precision exists, int8 too:
#      >= 0.99 each, >= 0.999 on average); at least 20 strings run past
#      codevec.max_tokens (truncation covered);
#   5. codevec-load refuses to mix vectors of two models: after a load with
#      the default model, a run under another model (the shipped weights
#      with every layer's query projection negated) is refused with exit 3 and
#      writes nothing; after UPDATE code.snippets SET emb = NULL,
#      `--embed-only` re-embeds every snippet with the new model.
#
# Needs the PG* variables of a running server with codevec installed and
# `make model` run (test/run.sh gives both), python3, cc, OpenBLAS,
# utf8proc, cJSON. Ends with "N passed, N failed"; exit status 1 on failure.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
MODEL=${CODEVEC_SHIPPED_MODEL:-$ROOT/models/code-minilm-l6}
STRINGS=$ROOT/models/reference-strings.jsonl
LOADER=${LOADER:-$ROOT/loaders/codevec-load}
PYLIB=${CVL_TEST_PYLIB:-/usr/lib/python3.11}
DB=models_test_$$
MAINTDB=${PGDATABASE:-postgres}
TMP=$(mktemp -d /tmp/codevec-models-test.XXXXXX)
chmod 755 "$TMP"
PASS=0; FAIL=0; SKIP=0; N=0
cleanup() {
	psql -X -q -d "$MAINTDB" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1
	rm -rf "$TMP"
}
trap cleanup EXIT
source "$ROOT/test/tap.sh"	# ok, is, like, skip
finish() {
	local sk=""
	[ "$SKIP" -eq 0 ] || sk=", $SKIP skipped"
	echo "$PASS passed, $FAIL failed$sk"
	[ "$FAIL" -eq 0 ]
	exit $?
}
Q() { psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$DB" -c "SET client_min_messages = warning" -c "$1"; }
sum_of() { awk -v f="$1" '$2 == f { print $1 }' "$MODEL/SHA256SUMS"; }

echo "# 1. the files in $MODEL"
if [ ! -f "$MODEL/SHA256SUMS" ]; then
	ok 1 "$MODEL/SHA256SUMS exists"
	finish
fi
while read -r sum path; do
	got=$(sha256sum "$MODEL/$path" 2>/dev/null | cut -d' ' -f1)
	is "$got" "$sum" "sha256 of $path"
done <"$MODEL/SHA256SUMS"
for f in config.json vocab.txt model.safetensors 1_Pooling/config.json modules.json tokenizer.json; do
	[ -n "$(sum_of "$f")" ]; ok $? "SHA256SUMS lists $f"
done
weights_sum=$(sum_of model.safetensors)
python3 - "$MODEL" "$STRINGS" >"$TMP/files.out" 2>&1 <<'PY'
import hashlib, json, os, struct, sys
model, strings = sys.argv[1:3]
def sha(p):
    h = hashlib.sha256()
    with open(p, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()
def check(cond, what):
    print(("ok" if cond else "FAIL") + " " + what)
w = os.path.join(model, "model.safetensors")
size = os.path.getsize(w)
with open(w, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    h = json.loads(f.read(n))
float_dtypes = {v["dtype"] for k, v in h.items() if k != "__metadata__"} - {"I64", "I32"}
check(float_dtypes == {"F16"}, "the weights are F16 (%s)" % sorted(float_dtypes))
check(size <= 50000000, "model.safetensors is %d bytes, at most 50,000,000" % size)
meta = json.load(open(os.path.join(model, "reference.json")))
check(meta["model_safetensors_sha256"] == sha(w),
      "reference.json was made from these weights (else run models/make-reference.py)")
check(meta["strings_sha256"] == sha(strings), "reference.json was made from reference-strings.jsonl")
ref = os.path.join(model, "reference.f32")
check(meta["reference_sha256"] == sha(ref), "reference.f32 is the file reference.json describes")
cfg = json.load(open(os.path.join(model, "config.json")))
check(meta["dims"] == cfg["hidden_size"] and os.path.getsize(ref) == 4 * meta["count"] * meta["dims"],
      "reference.f32 holds %d x %d float32" % (meta["count"], meta["dims"]))
rows = [json.loads(l) for l in open(strings, encoding="utf-8")]
kinds = {}
for r in rows:
    kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
langs = {r["language"] for r in rows if r["kind"].startswith("code")}
check(len(rows) == 200 == meta["count"], "200 strings (%d)" % len(rows))
check(kinds.get("code", 0) >= 100 and kinds.get("query", 0) + kinds.get("question", 0) >= 60,
      "code and questions among them (%s)" % kinds)
check(len(langs) == 8, "code of eight languages (%s)" % sorted(langs))
nonascii = sum(1 for r in rows if any(ord(c) > 127 for c in r["text"]))
check(nonascii >= 10, "%d strings with non-ASCII characters" % nonascii)
PY
[ $? -eq 0 ] || { cat "$TMP/files.out"; ok 1 "the file checks ran"; }
while read -r verdict what; do
	[ "$verdict" = ok ]; ok $? "$what"
done <"$TMP/files.out"

echo "# 2. tools/install-model.sh: offline, sha256 first (at ${SECONDS} s)"
dest=$TMP/installed
http_proxy=http://127.0.0.1:9 https_proxy=http://127.0.0.1:9 PIP_NO_INDEX=1 \
	CODEVEC_MODEL_DIR=$dest bash "$ROOT/tools/install-model.sh" "$MODEL" >"$TMP/install.out" 2>&1
ok $? "installs with no network (proxy unreachable, pip without an index)"
is "$(readlink "$dest/default")" "$(basename "$MODEL")" "default -> $(basename "$MODEL")"
(cd "$dest/$(basename "$MODEL")" && sha256sum -c --quiet "$MODEL/SHA256SUMS") >/dev/null 2>&1
ok $? "the installed files match SHA256SUMS"
[ -d "$dest/$(basename "$MODEL")/2_Normalize" ]; ok $? "the installed folder has 2_Normalize (modules.json names it)"
# broken copies of the folder: the small files linked, the weights replaced
broken() {	# broken NAME: a copy of the model folder without its weights
	local b=$TMP/$1/$(basename "$MODEL")
	mkdir -p "$b/1_Pooling"
	for f in "$MODEL"/* "$MODEL"/1_Pooling/*; do
		[ -f "$f" ] && [ "$(basename "$f")" != model.safetensors ] && ln -s "$f" "$b/${f#"$MODEL"/}"
	done
	echo "$b"
}
b=$(broken changed)
cp "$MODEL/model.safetensors" "$b/model.safetensors"
# the byte's bits flipped, so that it changes whatever the weights hold there
x=$(od -An -tu1 -j20000000 -N1 "$b/model.safetensors" | tr -d ' ')
printf "\\$(printf '%03o' $((255 - x)))" | dd of="$b/model.safetensors" bs=1 seek=20000000 conv=notrunc status=none
CODEVEC_MODEL_DIR=$TMP/changed-dest bash "$ROOT/tools/install-model.sh" "$b" >"$TMP/changed.out" 2>&1
rc=$?
is "$rc" 1 "one changed byte in the weights: exit 1"
grep -q "model.safetensors has sha256 .* SHA256SUMS says $weights_sum" "$TMP/changed.out"
ok $? "  and the message names the file and both sums: $(head -c 160 "$TMP/changed.out")"
[ ! -e "$TMP/changed-dest/$(basename "$MODEL")" ] && [ ! -e "$TMP/changed-dest/default" ]
ok $? "  and nothing is installed"
rm -f "$b/model.safetensors"
b=$(broken lfs)
printf 'version https://git-lfs.github.com/spec/v1\noid sha256:%s\nsize 45442816\n' "$weights_sum" >"$b/model.safetensors"
CODEVEC_MODEL_DIR=$TMP/lfs-dest bash "$ROOT/tools/install-model.sh" "$b" >"$TMP/lfs.out" 2>&1
is "$?" 1 "a Git LFS pointer instead of the weights: exit 1"
grep -q "Git LFS or git-annex pointer" "$TMP/lfs.out"; ok $? "  and the message says so: $(head -c 160 "$TMP/lfs.out")"
[ ! -e "$TMP/lfs-dest/$(basename "$MODEL")" ]; ok $? "  and nothing is installed"
b=$(broken missing)
CODEVEC_MODEL_DIR=$TMP/missing-dest bash "$ROOT/tools/install-model.sh" "$b" >"$TMP/missing.out" 2>&1
is "$?" 1 "no weights file: exit 1"
grep -q "model.safetensors is missing" "$TMP/missing.out"; ok $? "  and the message says so: $(head -c 160 "$TMP/missing.out")"

echo "# 3. the C encoder against sentence-transformers (at ${SECONDS} s)"
CC=${CC:-cc}
if $CC -O2 -g -Wall -std=gnu11 -I"$ROOT/src" -I"$ROOT/test/c" -o "$TMP/test_real_model" \
	"$ROOT/test/embed/test_real_model.c" "$ROOT/src/tokenizer.c" "$ROOT/src/model.c" \
	"$ROOT/src/encoder.c" -lopenblas -lutf8proc -lcjson -lm 2>"$TMP/cc.log"; then
	"$TMP/test_real_model" "$MODEL" "$STRINGS" "$MODEL/reference.f32" >"$TMP/c.out" 2>&1
	line=$(grep -E '^real-model: [0-9]+ passed, [0-9]+ failed$' "$TMP/c.out" | tail -1)
	grep -E '^not ok|^# ' "$TMP/c.out"
	p=$(echo "$line" | sed -nE 's/.*: ([0-9]+) passed.*/\1/p')
	is "${p:-0}" 200 "C encoder: 200 of 200 strings at cosine >= 0.99999 ($line)"
else
	cat "$TMP/cc.log"
	ok 1 "test_real_model builds"
fi

echo "# 4. on the server: the default model and embed() (at ${SECONDS} s)"
psql -X -q -d "$MAINTDB" -c "CREATE DATABASE $DB" >/dev/null || { ok 1 "database reachable"; finish; }
Q "CREATE EXTENSION codevec" >/dev/null
Q "SET codevec.device = cpu" >/dev/null
info=$(Q "SELECT name, dims, dtype, sha256 FROM codevec_model_info()" 2>&1)
is "$info" "$(basename "$MODEL")|384|F16|$weights_sum" "codevec.model = 'default' is the shipped model (name, dims, dtype, sha256)"
python3 - "$STRINGS" "$TMP/ref.csv" <<'PY'
import csv, json, sys
strings, out = sys.argv[1:3]
rows = [json.loads(l)["text"] for l in open(strings, encoding="utf-8")]
with open(out, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f)
    for i, t in enumerate(rows):
        w.writerow([i + 1, t])
PY
Q "CREATE TABLE ref_strings (i int PRIMARY KEY, t text NOT NULL)" >/dev/null
psql -X -q -d "$DB" -c "\\copy ref_strings FROM '$TMP/ref.csv' WITH (FORMAT csv)" >/dev/null
is "$(Q "SELECT count(*) FROM ref_strings")" 200 "the 200 strings in a table"
n=$(Q "SELECT count(*) FILTER (WHERE cardinality(codevec_tokenize(t)) = current_setting('codevec.max_tokens')::int) FROM ref_strings")
[ "${n:-0}" -ge 20 ]; ok $? "$n strings reach codevec.max_tokens (truncated)"
# compare LABEL MIN_COSINE MIN_MEAN SETTINGS: embed(text) one string at a
# time and embed(text[]) of all 200 under SETTINGS against the references,
# each cosine computed here in float64
compare() {
	local label=$1 mincos=$2 minmean=$3 set=$4
	Q "SET codevec.device = cpu; $set SELECT i, embed(t)::text FROM ref_strings ORDER BY i" >"$TMP/one.txt" 2>&1
	Q "SET codevec.device = cpu; $set SELECT row_number() OVER (), e::text FROM unnest((SELECT embed(array_agg(t ORDER BY i)) FROM ref_strings)) e" \
		>"$TMP/batch.txt" 2>&1
	python3 - "$MODEL/reference.f32" "$TMP/one.txt" "$TMP/batch.txt" "$label" "$mincos" "$minmean" >"$TMP/cos.out" 2>&1 <<'PY'
import math, struct, sys
ref, one, batch, label = sys.argv[1:5]
mincos, minmean = float(sys.argv[5]), float(sys.argv[6])
data = open(ref, "rb").read()
def vectors(p):
    out = {}
    for line in open(p):
        i, v = line.rstrip("\n").split("|", 1)
        out[int(i)] = [float(x) for x in v.strip("[]").split(",")]
    return out
for name, p in (("embed(text)", one), ("embed(text[])", batch)):
    name = "%s %s" % (label, name)
    try:
        got = vectors(p)
    except Exception as e:
        print("FAIL %s: could not read the output (%s)" % (name, open(p).read()[:300].replace("\n", " ")))
        continue
    d = len(got[1]) if 1 in got else 0
    cos = []
    for i in range(1, 201):
        g = got.get(i)
        if g is None or len(g) != d or d * 4 * 200 != len(data):
            print("FAIL %s string %d: no vector of the reference's dimensions" % (name, i))
            continue
        r = struct.unpack_from("<%df" % d, data, (i - 1) * d * 4)
        dot = sum(a * b for a, b in zip(g, r))
        c = dot / (math.sqrt(sum(a * a for a in g)) * math.sqrt(sum(b * b for b in r)))
        cos.append(c)
        print("%s %s string %d cosine %.7f (>= %g)" % ("ok" if c >= mincos else "FAIL", name, i, c, mincos))
    if cos:
        mean = sum(cos) / len(cos)
        print("%s %s: mean cosine %.7f (>= %g), worst %.7f over %d strings"
              % ("ok" if mean >= minmean and len(cos) == 200 else "FAIL", name, mean, minmean, min(cos), len(cos)))
PY
	while read -r verdict what; do
		case $verdict in
		ok) ok 0 "$what" ;;
		FAIL) ok 1 "$what" ;;
		*) echo "$verdict $what" ;;
		esac
	done <"$TMP/cos.out"
}
# the fp32 path (OpenBLAS): the bound for F16 weights, 0.99999 each.  Where
# the build has codevec.cpu_precision (int8 GEMMs through oneDNN), fp32 is
# chosen for this check and int8 is held to its documented bound: cosine
# >= 0.99 each, >= 0.999 on average (bench/embed/README.md)
prec=$(Q "SELECT '[1]'::codevec IS NOT NULL; SELECT current_setting('codevec.cpu_precision', true)" | tail -1)
if [ -n "$prec" ]; then
	compare fp32 0.99999 0.99999 "SET codevec.cpu_precision = fp32;"
	compare int8 0.99 0.999 "SET codevec.cpu_precision = int8;"
else
	compare fp32 0.99999 0.99999 ""
	skip "int8 embed()" "this build has no codevec.cpu_precision"
fi

echo "# 5. codevec-load never mixes vectors of two models (at ${SECONDS} s)"
other=$TMP/other-model
mkdir -p "$other/1_Pooling"
for f in "$MODEL"/* "$MODEL"/1_Pooling/*; do
	[ -f "$f" ] && [ "$(basename "$f")" != model.safetensors ] && cp "$f" "$other/${f#"$MODEL"/}"
done
mkdir -p "$other/2_Normalize"
python3 - "$MODEL/model.safetensors" "$other/model.safetensors" <<'PY'
import json, struct, sys
src, dst = sys.argv[1:3]
buf = bytearray(open(src, "rb").read())
n = struct.unpack_from("<Q", buf, 0)[0]
h = json.loads(buf[8:8 + n])
names = [k for k in h if k.endswith("attention.self.query.weight")]
assert names and all(h[k]["dtype"] == "F16" for k in names)
for k in names:
    a, b = h[k]["data_offsets"]
    for o in range(8 + n + a + 1, 8 + n + b, 2):	# F16: flip the sign bit of each value
        buf[o] ^= 0x80
open(dst, "wb").write(buf)
PY
chmod -R a+rX "$other"
Q "SELECT 1" >/dev/null
"$LOADER" --quiet -d "dbname=$DB" --repo json "$PYLIB/json" >"$TMP/load1.out" 2>&1
ok $? "codevec-load loads $PYLIB/json with the default model"
total=$(Q "SELECT count(*) FROM code.snippets")
is "$(Q "SELECT count(*) FROM code.snippets WHERE emb IS NULL")|$([ "${total:-0}" -gt 10 ] && echo many)" "0|many" \
	"every snippet has a vector ($total snippets)"
"$LOADER" --quiet -d "dbname=$DB" --embed-only >"$TMP/same.out" 2>&1
ok $? "--embed-only with the same model is not refused"
dist=$(PGOPTIONS="-c codevec.model=$other" psql -X -A -t -q -d "$DB" -c "SET codevec.device = cpu" \
	-c "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY emb <=> embed(embed_text))::numeric, 3) FROM (SELECT * FROM code.snippets ORDER BY id LIMIT 20) s" 2>&1)
echo "# the other model: median cosine distance $dist to the stored vectors of 20 snippets"
Q "UPDATE code.snippets SET emb = NULL WHERE id IN (SELECT id FROM code.snippets ORDER BY id DESC LIMIT 5)" >/dev/null
before=$(Q "SELECT md5(string_agg(coalesce(emb::text, '-'), ',' ORDER BY id)) FROM code.snippets")
PGOPTIONS="-c codevec.model=$other" "$LOADER" -d "dbname=$DB" --embed-only >"$TMP/mix1.out" 2>&1
is "$?" 3 "--embed-only under another model: refused, exit 3"
grep -q "holds embeddings of another model" "$TMP/mix1.out" && grep -q "UPDATE code.snippets SET emb = NULL" "$TMP/mix1.out"
ok $? "  the message says why and how to re-embed: $(head -c 300 "$TMP/mix1.out")"
is "$(Q "SELECT md5(string_agg(coalesce(emb::text, '-'), ',' ORDER BY id)) FROM code.snippets")" "$before" \
	"  and no vector was written (the 5 missing stay missing)"
nrepo=$(Q "SELECT count(*) FROM code.repos")
PGOPTIONS="-c codevec.model=$other" "$LOADER" -d "dbname=$DB" --repo wsgiref "$PYLIB/wsgiref" >"$TMP/mix2.out" 2>&1
is "$?" 3 "loading a new tree under another model: refused, exit 3"
is "$(Q "SELECT count(*) FROM code.repos")|$(Q "SELECT count(*) FROM code.snippets")" "$nrepo|$total" \
	"  and nothing of it was written"
"$LOADER" --quiet -d "dbname=$DB" --repo wsgiref "$PYLIB/wsgiref" >"$TMP/back.out" 2>&1
ok $? "the same tree with the model that made the vectors loads"
Q "UPDATE code.snippets SET emb = NULL" >/dev/null
PGOPTIONS="-c codevec.model=$other" "$LOADER" --quiet -d "dbname=$DB" --embed-only >"$TMP/reembed.out" 2>&1
ok $? "after UPDATE code.snippets SET emb = NULL, --embed-only under the other model runs"
is "$(Q "SELECT count(*) FROM code.snippets WHERE emb IS NULL")" 0 "  every snippet has a vector again"
far=$(PGOPTIONS="-c codevec.model=$other" psql -X -A -t -q -d "$DB" -c "SET codevec.device = cpu" \
	-c "SELECT count(*) FILTER (WHERE (emb <=> embed(embed_text)) > 1e-4) FROM (SELECT * FROM code.snippets ORDER BY random() LIMIT 20) s" 2>&1)
is "$far" 0 "  and they are the other model's (20 sampled: embed() under it gives the stored vector)"
"$LOADER" -d "dbname=$DB" --embed-only >"$TMP/mix3.out" 2>&1
is "$?" 3 "back under the default model: refused again"

echo "# done at ${SECONDS} s"
finish
