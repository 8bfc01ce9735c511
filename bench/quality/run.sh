#!/usr/bin/env bash
# bench/quality/run.sh — the retrieval-quality benchmark (issue 7), end to end.
#
#   bash bench/quality/run.sh            # every step below, in order
#   bash bench/quality/run.sh STEP...    # only those steps
#
# Steps:
#   venv     bench/quality/.venv with psycopg and matplotlib (pinned, PyPI)
#   set      build-set.py: fetch the pinned packages of manifest.tsv, build
#            the corpus in $CODEVEC_QUALITY_CACHE/corpus and queries.tsv.gz
#   cluster  start the throwaway cluster /tmp/quality-cluster on port 5530
#            (under nice: embed() runs in its backends)
#   load     database "quality": every repo with codevec-load --strip-docs
#            --no-embed, vectors from the embedding cache, then embed the
#            rest (--embed-only per repo, retried) and add them to the cache
#   search   every query through code.search in modes vector, keyword and
#            hybrid (code.search's defaults: rrf_k 2, keyword_weight 0.5,
#            depth 100; RRF_KS=60,10,5 and KW_WEIGHTS=1,0.5 for more)
#                                                  -> $CACHE/search-<embed_text>.json
#   lists    plain-SQL vector and keyword lists to depth 400 (the rrf_k x
#            depth and keyword-weight grids are fused offline from them)
#                           -> $CACHE/lists.json.gz (lists-m<model>.json.gz)
#   kw       keyword query semantics compared in plain SQL
#   bm25     BM25 k1 x b x field weights tuned on the odd queries, reported
#            on the even ones (bm25_tune.py -> results-bm25.json)
#   variants embed_text variants on a stratified sub-corpus (variants.py)
#   report   results.md, results.json, results.png in bench/quality
#   stop     stop the cluster
#
# Needs: the codevec extension and a codevec-load with --strip-docs and
# --embed-fields installed (make && make install, make -C loaders install
# from the repository root; make model), PostgreSQL 15, python3.
# Environment: CODEVEC_QUALITY_CACHE (default /tmp/codevec-quality; outside
# the git work tree: the loader skips gitignored files), PORT (5530), KEEP=1
# leaves the cluster running.  EMBED_FIELDS / EMBED_MAX_BYTES / EMBED_WORDS
# (loader --embed-fields / --embed-max-bytes / --embed-words; default the
# loader's defaults) name the embed_text: load and search use database
# quality_<fields>_<bytes>[_w<words>] and write search-<same>.json, so
# another embed_text is the same benchmark beside it (report.py lists it).
# MODEL (a codevec.model value, e.g. code-MiniLM-L6; default the installed
# default) likewise: database and results get _m<model>, the database has
# codevec.model set.  PRECISION (fp32 or int8: codevec.cpu_precision for
# the CPU encoder; default the server's, int8) likewise: _p<precision>.
# LANGS (a comma list of manifest.tsv's languages; default all) loads only
# the repos of those languages, and search then asks only their queries
# (eval.py drops a query whose target is not loaded): LANGS=go,javascript,
# python,rust is the four-language set of 2026-11-21 to 2026-12-03 (its
# 36,302 snippets and qids 1..2400 are byte-identical in the eight-language
# set; build-set.py), on which issue 27's in-distribution anchor 0.474 was
# measured.  Database and results get _l<abbreviations> (_lgo_js_py_rs).
# CLUSTER (default /tmp/quality-cluster) is the cluster's folder.  E.g.
#   EMBED_FIELDS=name,signature,doc,body EMBED_MAX_BYTES=1000 EMBED_WORDS=none \
#       bash bench/quality/run.sh load search
#
# Time on the development machine (2 cores shared with other work, no GPU):
# set 1 min (30 s when the packages are cached), load 15 s + embedding
# 36,302 snippets about 25 min (cached afterwards), search 2,400 queries x 3
# modes about 10 min, lists 5 min, kw 5 min, variants about 5 min per
# variant that is not cached.  timings.json in the cache records each step.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
export CODEVEC_QUALITY_CACHE=${CODEVEC_QUALITY_CACHE:-/tmp/codevec-quality}
cache=$CODEVEC_QUALITY_CACHE
port=${PORT:-5530}
cluster=${CLUSTER:-/tmp/quality-cluster}
py=$here/.venv/bin/python
mkdir -p "$cache"

loader=$(command -v codevec-load || true)
[ -n "$loader" ] || loader=$(pg_config --bindir)/codevec-load
[ -x "$loader" ] || loader=/usr/lib/postgresql/15/bin/codevec-load
export CODEVEC_LOAD=$loader

say() { printf '== %s\n' "$*" >&2; }

# the database (and results suffix) of the embed_text configuration asked for
# (codevec-load's defaults, written out; each embed_text has its own
# database and search-<fields>_<bytes>[_w<words>].json)
f=${EMBED_FIELDS:-name,signature,doc,body}; b=${EMBED_MAX_BYTES:-500}; w=${EMBED_WORDS:-name+all}
model=${MODEL:-}
mtag=${model,,}; mtag=${mtag//[^a-z0-9]/_}
precision=${PRECISION:-}
suffix="-${f//,/_}_$b"; [ "$w" = none ] || suffix="${suffix}_w${w//+/_}"
[ -z "$model" ] || suffix="${suffix}_m$mtag"
[ -z "$precision" ] || suffix="${suffix}_p$precision"
langs=${LANGS:-}
if [ -n "$langs" ]; then
	declare -A abbrev=([c]=c [cpp]=cpp [go]=go [java]=java [javascript]=js [python]=py
	                   [rust]=rs [typescript]=ts)
	ltag=
	for l in ${langs//,/ }; do
		[ -n "${abbrev[$l]:-}" ] || { echo "LANGS: no language $l in manifest.tsv" >&2; exit 2; }
		ltag="${ltag}_${abbrev[$l]}"
	done
	suffix="${suffix}_l${ltag#_}"
fi
db="quality_${suffix#-}"
# PostgreSQL cuts names at 63 bytes (NAMEDATALEN - 1): a longer one keeps
# its first 50 characters and a hash of the whole
[ ${#db} -le 63 ] || db="${db:0:50}_$(printf %s "$db" | md5sum | cut -c1-12)"
load_opts=(--embed-fields="$f" --embed-max-bytes="$b" --embed-words="$w")
embed_desc="fields=$f max_bytes=$b words=$w"

# Record how long a step took in timings.json.
timed() {
	local name=$1; shift
	local t0; t0=$(date +%s.%N)
	"$@"
	python3 - "$cache/timings.json" "$name" "$t0" "$(date +%s.%N)" <<'EOF'
import json, os, sys
p, name, t0, t1 = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
d = json.load(open(p)) if os.path.exists(p) else {}
d[name] = round(t1 - t0, 1)
json.dump(d, open(p, 'w'), indent=1)
EOF
}

need_loader() {
	"$loader" --help | grep -- '--strip-docs' >/dev/null || {
		echo "$loader has no --strip-docs: make -C $root/loaders install" >&2; exit 1; }
}

step_venv() {
	[ -x "$py" ] && "$py" -c 'import psycopg, matplotlib' 2>/dev/null && return
	python3 -m venv "$here/.venv"
	"$here/.venv/bin/pip" install -q 'psycopg[binary]==3.1.18' 'matplotlib==3.8.2'
}

step_set() {
	need_loader
	python3 "$here/build-set.py"
}

step_cluster() {
	eval "$(nice -n 10 bash "$root/test/cluster.sh" start "$cluster" "$port")"
}

env_db() {
	eval "$(nice -n 10 bash "$root/test/cluster.sh" start "$cluster" "$port")"
	export PGDATABASE=${1:-quality}
}

# Embed every snippet of $PGDATABASE that has no vector, repo by repo (the
# loader's --embed-only), retrying: a shared install may be mid-rebuild.
embed_all() {
	local left r
	for try in 1 2 3 4 5; do
		left=$(psql -qAtc "SELECT count(*) FROM code.snippets WHERE emb IS NULL")
		[ "$left" = 0 ] && return 0
		say "embedding $left snippets (try $try)"
		for r in $(psql -qAtc "SELECT DISTINCT r.name FROM code.snippets s JOIN code.files f
		                       ON f.id = s.file_id JOIN code.repos r ON r.id = f.repo_id
		                       WHERE s.emb IS NULL ORDER BY 1"); do
			"$loader" --embed-only -q --repo "$r" || sleep 30
		done
	done
	echo "snippets left without embedding: $(psql -qAtc 'SELECT count(*) FROM code.snippets WHERE emb IS NULL')" >&2
	return 1
}

step_load() {
	need_loader
	env_db postgres
	psql -qAtc "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
	[ -z "$model" ] || psql -qAtc "ALTER DATABASE $db SET codevec.model = '$model'"
	[ -z "$precision" ] || psql -qAtc "ALTER DATABASE $db SET codevec.cpu_precision = '$precision'"
	export PGDATABASE=$db
	local r
	for r in $(ls "$cache/corpus"); do
		if [ -n "$langs" ]; then
			# the repo's language in manifest.tsv (repo, language, ...)
			case ",$langs," in
			*",$(awk -F'\t' -v r="$r" '$1 == r { print $2 }' "$here/manifest.tsv"),"*) ;;
			*) continue ;;
			esac
		fi
		"$loader" -q --strip-docs --no-embed "${load_opts[@]}" --repo "$r" "$cache/corpus/$r"
	done
	say "loaded $db ($embed_desc)"
	"$py" "$here/embcache.py" import
	timed "embed$suffix" embed_all
	"$py" "$here/embcache.py" export
	psql -qAtc "ANALYZE code.snippets"
	# BM25 for code.search's keyword list (issue 21), when the loader made it
	if [ "$(psql -qAtc "SELECT to_regprocedure('code.bm25_refresh(double precision)') IS NOT NULL")" = t ]; then
		psql -qAtc "SELECT code.bm25_refresh()" -c "VACUUM (ANALYZE) code.bm25_postings" >/dev/null
	fi
}

# BM25's k1, b and field weights: a grid scored offline on the odd queries,
# reported on the even ones (bm25_tune.py; needs the loaded database only)
step_bm25() {
	env_db "$db"
	"$py" "$here/bm25_tune.py" --out "$here/results-bm25.json"
}

step_search() {
	env_db "$db"
	"$py" "$here/eval.py" search --modes vector,keyword,hybrid \
		--rrf-k "${RRF_KS:-2}" --keyword-weight "${KW_WEIGHTS:-0.5}" --depth 100 \
		--embed "$embed_desc" --out "$cache/search$suffix.json"
}

step_lists() {
	env_db "$db"
	local out=lists.json.gz
	[ -z "$model" ] || out=lists-m$mtag.json.gz
	"$py" "$here/eval.py" lists --depth 400 --out "$cache/$out"
}

step_kw() {
	env_db "$db"
	"$py" "$here/eval.py" kwlists --depth 100 --outdir "$cache"
}

step_variants() {
	need_loader
	env_db postgres
	"$py" "$here/variants.py"
}

step_report() {
	"$py" "$here/report.py"
}

step_stop() {
	bash "$root/test/cluster.sh" stop "$cluster"
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(venv set cluster load search lists kw variants report)
for s in "${steps[@]}"; do
	say "$s"
	timed "$s$suffix" "step_$s"
done
if [ "${KEEP:-0}" != 1 ] && [ $# -eq 0 ]; then
	step_stop
fi
