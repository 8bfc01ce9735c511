#!/bin/bash
# bench/quality/ood/build-kit.sh — everything make-kit.py needs, then the kit.
#
#   bash bench/quality/ood/build-kit.sh KIT.json.gz [COCLR_CLONE]
#   STAQC_CODEXGLUE=DIR bash bench/quality/ood/build-kit.sh ... (also StaQC,
#       from a clone of microsoft/CodeXGLUE: fetch.py staqc --codexglue)
#   STAQC_CLONE=DIR bash bench/quality/ood/build-kit.sh ...   (also StaQC, from
#       the StaQC repository itself, whose text pickles were out of reach)
#   PYTHON=bench/quality/.venv/bin/python ... (a python with psycopg; checked
#       first, exit 2 without it)
#
# Connection: libpq PG* variables (host, port, user) of a cluster with the
# codevec extension and codevec-load installed (run it under
# flock /tmp/codevec-db.lock on the shared machine, or against a private
# cluster of test/cluster.sh). Creates (drops first) the databases
# hand_<repo> (5), cosqa, public and verify. Steps:
#   1. handwritten/build-corpus.sh: the five repositories (pinned .debs)
#   2. fetch.py cosqa [--from COCLR_CLONE]; one file cN.py per function
#   3. codevec-load --no-embed per database (public: bench/quality's corpus
#      with --strip-docs, from $CODEVEC_QUALITY_CACHE/corpus: run.sh set)
#   4. verify: googletest/src + googlemock/src, embedded on the CPU with
#      all-MiniLM-L6-v2 (make model-base; VERIFY_MODEL=NAME for another
#      installed model), the model gpu-run.sh verifies against code.search
#      (869 snippets; ~1-5 min)
#   5. with STAQC_CODEXGLUE or STAQC_CLONE (fetch.py's docstring):
#      fetch.py staqc [--codexglue] --tree, database staqc
#   6. make-kit.py KIT --verify verify
# About 10 minutes on 2 cores, most of it loading and the keyword lists.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kit=$1
coclr=${2:-}
cache=${CODEVEC_OOD_CACHE:-/tmp/codevec-ood}
qcache=${CODEVEC_QUALITY_CACHE:-/tmp/codevec-quality}
py=${PYTHON:-python3}
# make-kit.py, the last step, needs psycopg: say so before the loading
"$py" -c 'import psycopg' 2>/dev/null || {
	echo "build-kit.sh: $py cannot import psycopg, which make-kit.py needs;" \
		"set PYTHON to a python that has it (bench/quality/run.sh venv makes bench/quality/.venv)" >&2
	exit 2
}
loader=$(command -v codevec-load || echo "$(pg_config --bindir)/codevec-load")
export CODEVEC_OOD_CACHE=$cache
bash "$here/../handwritten/build-corpus.sh" "$cache"
"$py" "$here/fetch.py" cosqa ${coclr:+--from "$coclr"}
rm -rf "$cache/cosqa-tree"; mkdir -p "$cache/cosqa-tree"
"$py" - "$cache" <<'PY'
import json, sys
c = sys.argv[1]
for s in json.load(open(c + '/cosqa.json', encoding='utf-8'))['corpus']:
    open('%s/cosqa-tree/c%d.py' % (c, s['cid']), 'w', encoding='utf-8').write(s['code'].rstrip('\n') + '\n')
PY
fresh() { psql -d postgres -qAtc "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1"; }
grep -v '^#' "$here/../handwritten/manifest.tsv" | cut -f1 | while read -r r; do
	db=hand_${r//-/_}
	fresh "$db"
	PGDATABASE=$db "$loader" -q --no-embed --repo "$r" "$cache/hand/$r"
done
fresh cosqa
PGDATABASE=cosqa "$loader" -q --no-embed --repo cosqa "$cache/cosqa-tree"
[ -d "$qcache/corpus" ] || { echo "no $qcache/corpus: run bench/quality/run.sh venv set first" >&2; exit 1; }
fresh public
# shellcheck disable=SC2045  # ls's order (names, no "/") is the load order every kit was made with
for r in $(ls "$qcache/corpus"); do
	PGDATABASE=public "$loader" -q --strip-docs --no-embed --repo "$r" "$qcache/corpus/$r"
done
rm -rf "$cache/verify-tree"
mkdir -p "$cache/verify-tree/googletest" "$cache/verify-tree/googlemock"
cp -a "$cache/hand/googletest/googletest/src" "$cache/verify-tree/googletest/"
cp -a "$cache/hand/googletest/googlemock/src" "$cache/verify-tree/googlemock/"
fresh verify
psql -d postgres -qAtc "ALTER DATABASE verify SET codevec.device = cpu" \
	-c "ALTER DATABASE verify SET codevec.model = '${VERIFY_MODEL:-all-MiniLM-L6-v2}'"
PGDATABASE=verify "$loader" -q --repo googletest "$cache/verify-tree"
only=public,cosqa,hand
staqc=()
[ -n "${STAQC_CLONE:-}" ] && staqc=(--from "$STAQC_CLONE")
[ -n "${STAQC_CODEXGLUE:-}" ] && staqc=(--codexglue --from "$STAQC_CODEXGLUE")
if [ ${#staqc[@]} -gt 0 ]; then
	"$py" "$here/fetch.py" staqc "${staqc[@]}" --tree "$cache/staqc-tree"
	fresh staqc
	PGDATABASE=staqc "$loader" -q --no-embed --repo staqc "$cache/staqc-tree"
	only=$only,staqc
fi
"$py" "$here/make-kit.py" "$kit" --only "$only" --verify verify
