#!/usr/bin/env bash
# bench/keyword/search-ab.sh -- code.search against another version of it,
# same database, same run, alternated: for each mode (vector, hybrid,
# keyword) one client's p50 through pgbench -M prepared and the QPS at
# CLIENTS, ROUNDS rounds.  BEFORE_SQL is a file that creates the other
# version as code.search_before, with code.search's arguments (e.g.
# pg_get_functiondef of an older code.search, renamed).  For the CUDA host
# (GPU_HOST=1: test/gpu/setup.sh's server, GPU service on) or any server
# the libpq environment names.
#
#   GPU_HOST=1 BEFORE_SQL=old.sql DB=pylib TREE=/usr/lib/python3.12 bash bench/keyword/search-ab.sh
#
# TREE: loaded into DB first when DB does not exist (codevec-load's
# defaults: embeddings by the server, BM25 built); a gpuivf index (lists 1,
# exact) is made when the table has none.  The questions are bench/quality's
# every 24th, as bench/keyword/gpu.sh's.  T seconds a pgbench run (8),
# CLIENTS (16), ROUNDS (2), MODES ("vector hybrid keyword").  Lines start
# RESULT: RESULT,version,mode,round,p50_ms,qps_1,qps_CLIENTS.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
db=${DB:?DB}
if [ "${GPU_HOST:-0}" = 1 ]; then
	set --
	source "$top/test/gpu/setup.sh" >/dev/null || exit 1
fi
export PGDATABASE=$db
. "$top/bench/gpuivf/lib.sh"	# tps
T=${T:-8}
CLIENTS=${CLIENTS:-16}
ROUNDS=${ROUNDS:-2}
work=$(mktemp -d /tmp/searchab.XXXXXX); chmod 755 "$work"
if [ -n "${TREE:-}" ] && ! psql -qAtX -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
	psql -qX -d postgres -c "CREATE DATABASE $db" || exit 1
	psql -qX -c "CREATE EXTENSION codevec" || exit 1
	/usr/bin/time -f "# load: %e s" codevec-load --no-progress --repo "$(basename "$TREE")" "$TREE" >/dev/null || exit 1
fi
if [ "$(psql -qAtX -c "SELECT count(*) FROM pg_indexes WHERE schemaname = 'code' AND indexdef LIKE '%USING gpuivf%'")" = 0 ]; then
	psql -qX -c "CREATE INDEX ON code.snippets USING gpuivf (emb codevec_cosine_ops)" || exit 1
fi
psql -qX -v ON_ERROR_STOP=1 -f "${BEFORE_SQL:?BEFORE_SQL}" >/dev/null || exit 1
psql -qX -c "VACUUM ANALYZE code.snippets" >/dev/null
psql -qAtX -c "SELECT '# ' || count(*) || ' snippets, ' || count(emb) || ' embedded' FROM code.snippets"
bash "$top/bench/keyword/questions.sh" || exit 1
# the same answers first: every question, every mode, both versions
for mode in ${MODES:-vector hybrid keyword}; do
	d=$(psql -qAtX -c "SELECT count(*) FROM public.bench_questions b, LATERAL (SELECT
		(SELECT array_agg(s.id ORDER BY s.score DESC, s.id) FROM code.search(b.q, k => 10, mode => '$mode') s)
		IS DISTINCT FROM
		(SELECT array_agg(s.id ORDER BY s.score DESC, s.id) FROM code.search_before(b.q, k => 10, mode => '$mode') s)) x(differs)
		WHERE x.differs")
	echo "# $mode: $d of 100 questions answered differently by the two versions"
done
for r in $(seq 1 "$ROUNDS"); do
	for mode in ${MODES:-vector hybrid keyword}; do
		for version in before after; do
			fn=search; [ "$version" = before ] && fn=search_before
			printf '\\set i random(1, 100)\nSELECT s.id FROM public.bench_questions b, code.%s(b.q, k => 10, mode => %s) s WHERE b.i = :i;\n' \
				"$fn" "'$mode'" > "$work/q.sql"
			rm -f "$work"/log.*
			(cd "$work" && pgbench -n -M prepared -c 1 -j 1 -T "$T" -l --log-prefix=log -f q.sql > one.out 2>&1)
			p50=$(cat "$work"/log.* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {if (NR) printf "%.3f", a[int((NR+1)/2)]/1000}')
			q1=$(tps "$work/one.out")
			pgbench -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$T" -f "$work/q.sql" > "$work/n.out" 2>&1
			qn=$(tps "$work/n.out")
			echo "RESULT,$version,$mode,$r,$p50,$q1,$qn"
		done
	done
done
rm -rf "$work"
