#!/usr/bin/env bash
# bench/keyword/gpu.sh -- code.search on the CUDA host (issue 21): for every
# mode (vector, keyword, hybrid), one client's latency p50 / p95 through
# pgbench -M prepared, QPS at 16 clients, and a new session's first call
# against its later ones.  Runs as root on the server test/gpu/setup.sh
# starts (GPU service on, codevec.device = auto), like bench/gpuivf/compare.sh.
#
#   bash bench/keyword/gpu.sh                 # database $DB (default linux), loaded already
#   TREE=/path/to/tree bash bench/keyword/gpu.sh   # load TREE into $DB first (embeddings
#                                             # on the GPU, a gpuivf index, BM25 built)
#
# The database must hold code.snippets with embeddings (codevec-load with
# embed()), a gpuivf index on emb (made here when missing: lists = 1, the
# exact flat index) and built BM25 postings (code.bm25_refresh() is run
# here when they are not).  The questions are bench/quality's, every 24th
# (latency.py's 100).  Results: lines starting RESULT on stdout and
# $OUT/keyword-gpu.csv when $OUT is set (the device's output folder).
#
# Settings: T seconds per pgbench run (default 20), CLIENTS (default 16),
# SESSIONS fresh sessions for the first-call figure (default 20), PARTS=0
# to skip hybrid's parts (embed, each list alone; a sampled hybrid run),
# PREFETCH_AB=0 to skip hybrid with gpuivf.prefetch off and on (ROUNDS).
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
source "$top/test/gpu/setup.sh" || exit 1
. "$top/bench/gpuivf/lib.sh"	# stages_snap, stages_table, tps
export PGDATABASE=${DB:-linux}
T=${T:-20}
CLIENTS=${CLIENTS:-16}
SESSIONS=${SESSIONS:-20}
work=$(mktemp -d /tmp/kwgpu.XXXXXX); chmod 755 "$work"
csv=${OUT:+$OUT/keyword-gpu.csv}
[ -n "$csv" ] && echo "what,mode,clients,value,unit" > "$csv"
result() {	# result WHAT MODE CLIENTS VALUE UNIT
	echo "RESULT,$1,$2,$3,$4,$5"
	[ -n "$csv" ] && echo "$1,$2,$3,$4,$5" >> "$csv"
	return 0
}

# ---------------------------------------------------------------- the data
if [ -n "${TREE:-}" ] && ! psql -qAtX -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$PGDATABASE'" | grep -q 1; then
	psql -qX -d postgres -c "CREATE DATABASE $PGDATABASE" || exit 1
	psql -qX -c "CREATE EXTENSION codevec" || exit 1
	/usr/bin/time -f 'RESULT,load,all,1,%e,s' codevec-load --no-progress --repo "$(basename "$TREE")" "$TREE" >/dev/null || exit 1
fi
psql -qAtX -c "SELECT count(*), count(emb) FROM code.snippets" | {
	IFS='|' read -r n ne; echo "# $PGDATABASE: $n snippets, $ne with embeddings"
	[ "${ne:-0}" -gt 0 ] || { echo "no embeddings in $PGDATABASE: load it with embed() first" >&2; exit 1; }
} || exit 1
if [ "$(psql -qAtX -c "SELECT count(*) FROM pg_indexes WHERE schemaname = 'code' AND indexdef LIKE '%USING gpuivf%'")" = 0 ]; then
	psql -qX -c '\timing on' -c "CREATE INDEX snippets_emb_gpuivf ON code.snippets USING gpuivf (emb codevec_cosine_ops)"
fi
if [ "$(psql -qAtX -c "SELECT built FROM code.bm25_params")" != t ]; then
	psql -qX -c '\timing on' -c "SELECT code.bm25_refresh()" -c "VACUUM ANALYZE code.bm25_postings"
fi
psql -qX -c "VACUUM ANALYZE code.snippets" >/dev/null
# warm: the GPU copy of the index, the model, the postings in shared buffers
psql -qX -c "SELECT count(*) FROM code.search('open a file and read its lines', k => 10)" >/dev/null
psql -qX -c "SELECT count(*) FROM code.bm25_postings WHERE postings IS NOT NULL" >/dev/null

# the questions
bash "$top/bench/keyword/questions.sh" || exit 1

# one_client FILE SECONDS: pgbench at 1 client with every transaction's
# latency logged (microseconds, 3rd field); sorted into $work/lat.txt
one_client() {
	rm -f "$work"/log.*
	(cd "$work" && pgbench -n -M prepared -c 1 -j 1 -T "$2" -l --log-prefix=log -f "$1" > "$work/pgbench1.out" 2>&1)
	cat "$work"/log.* | awk '{print $3}' | sort -n > "$work/lat.txt"
}
# pct_ms P: the P-th percentile of $work/lat.txt in ms (empty when none)
pct_ms() { awk -v p="$1" '{ a[NR] = $1 } END { if (NR) printf "%.3f", a[int((NR * p + 99) / 100)] / 1000 }' "$work/lat.txt"; }

# ---------------------------------------------------------------- latency, QPS
for mode in vector keyword hybrid; do
	printf '\\set i random(1, 100)\nSELECT s.id FROM public.bench_questions b, code.search(b.q, k => 10, mode => %s) s WHERE b.i = :i;\n' \
		"'$mode'" > "$work/$mode.sql"
	one_client "$mode.sql" "$T"
	if [ -s "$work/lat.txt" ]; then
		result latency_p50 "$mode" 1 "$(pct_ms 50)" ms
		result latency_p95 "$mode" 1 "$(pct_ms 95)" ms
	fi
	result qps "$mode" 1 "$(tps "$work/pgbench1.out")" tps
	pgbench -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$T" -f "$work/$mode.sql" > "$work/pgbenchN.out" 2>&1
	result qps "$mode" "$CLIENTS" "$(tps "$work/pgbenchN.out")" tps
	grep -E 'latency average|failed' "$work/pgbenchN.out" | sed 's/^/# /'
done

# ---------------------------------------------------------------- the prefetch, off and on
# Hybrid with gpuivf.prefetch off (its vector list's GPU request sent by the
# scan, after the keyword list) and on (posted before the keyword list, which
# then runs while the GPU answers), alternated ROUNDS times (default 2):
# one client's p50 and QPS at $CLIENTS. PREFETCH_AB=0 skips it.
if [ "${PREFETCH_AB:-1}" = 1 ]; then
	for r in $(seq 1 "${ROUNDS:-2}"); do
		for pf in off on; do
			export PGOPTIONS="-c gpuivf.prefetch=$pf"
			one_client hybrid.sql "$((T / 2 + 1))"
			[ -s "$work/lat.txt" ] && result prefetch_p50 "hybrid-prefetch-$pf" 1 "$(pct_ms 50)" ms
			pgbench -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$((T / 2 + 1))" -f "$work/hybrid.sql" > "$work/pgbenchN.out" 2>&1
			result prefetch_qps "hybrid-prefetch-$pf" "$CLIENTS" "$(tps "$work/pgbenchN.out")" tps
			unset PGOPTIONS
		done
	done
	psql -qAtX -c "EXPLAIN (ANALYZE, COSTS off, TIMING off) SELECT * FROM code.search('open a file and read its lines', k => 10)" |
		grep 'gpuivf:' | sed 's/^/# prefetch on: /'
fi

# ---------------------------------------------------------------- hybrid's parts
# What a hybrid search is made of, each part alone, 1 client p50 and QPS at
# $CLIENTS: embed(), the vector list (the gpuivf scan with the k code.search
# asks: k for vector mode, depth = 100 for hybrid), the BM25 list
# (code.bm25_filtered at k and at depth).  PARTS=0 skips it.
if [ "${PARTS:-1}" = 1 ]; then
	qsel='(SELECT b.q FROM public.bench_questions b WHERE b.i = :i)'
	printf '\\set i random(1, 100)\nSELECT embed(%s) IS NOT NULL;\n' "$qsel" > "$work/p-embed.sql"
	for n in 10 100; do
		printf '\\set i random(1, 100)\nSELECT count(*) FROM (SELECT s.id FROM code.snippets s ORDER BY s.emb <=> (SELECT embed(b.q) FROM public.bench_questions b WHERE b.i = :i) LIMIT %d) x;\n' "$n" > "$work/p-vector$n.sql"
		printf '\\set i random(1, 100)\nSELECT count(*) FROM code.bm25_filtered(%s, %d);\n' "$qsel" "$n" > "$work/p-bm25-$n.sql"
	done
	for part in embed vector10 vector100 bm25-10 bm25-100; do
		one_client "p-$part.sql" "$((T / 2 + 1))"
		[ -s "$work/lat.txt" ] && result part_p50 "$part" 1 "$(pct_ms 50)" ms
		pgbench -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$((T / 2 + 1))" -f "$work/p-$part.sql" > "$work/pgbenchN.out" 2>&1
		result part_qps "$part" "$CLIENTS" "$(tps "$work/pgbenchN.out")" tps
		grep -E 'failed|ERROR' "$work/pgbenchN.out" | head -3 | sed 's/^/# /'
	done
	# hybrid at $CLIENTS again, with what the backends wait on (pg_stat_activity
	# sampled every 0.1 s) and the GPU service's stages over that run alone
	stages_snap
	( while :; do
		psql -qAtX -F ' ' -c "SELECT coalesce(wait_event_type || ':' || wait_event, 'running') FROM pg_stat_activity
			WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'"
		sleep 0.1
	done ) > "$work/waits.txt" 2>/dev/null &
	sampler=$!
	pgbench -n -M prepared -c "$CLIENTS" -j "$CLIENTS" -T "$T" -f "$work/hybrid.sql" > "$work/pgbenchN.out" 2>&1
	kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
	result qps hybrid-sampled "$CLIENTS" "$(tps "$work/pgbenchN.out")" tps
	echo "# hybrid at $CLIENTS clients: active backends' wait events (samples)"
	sort "$work/waits.txt" | uniq -c | sort -rn | head -15 | sed 's/^/#   /'
	echo "# the GPU service's stages during that run (per timing and per request, us)"
	stages_table
	[ -n "$csv" ] && cp "$work/waits.txt" "$OUT/hybrid-waits.txt"
fi

# ---------------------------------------------------------------- first call in a session
# psql's \timing of the first and the second code.search of a fresh session
# (different questions), medians over SESSIONS sessions; and the wall time
# of a new session that runs SELECT 1 (connect, login, the query, exit).
# Twice: without the login warm-up (tag "") and, where the server has
# codevec_session (src/codevec_session.c), with session_preload_libraries =
# 'codevec_session' set on the database (tag "-warmup"; WARMUP_AB=0 skips it).
med() { sort -n "$1" | awk '{ a[NR] = $1 } END { if (NR) print a[int((NR + 1) / 2)] }'; }
first_calls() {	# first_calls TAG
	for mode in vector keyword hybrid; do
		: > "$work/first.txt"; : > "$work/second.txt"
		for s in $(seq 1 "$SESSIONS"); do
			a=$(( (2 * s) % 100 + 1 )); b=$(( (2 * s + 1) % 100 + 1 ))
			psql -qAtX -c '\timing on' \
				-c "SELECT count(*) FROM public.bench_questions q, code.search(q.q, k => 10, mode => '$mode') s WHERE q.i = $a" \
				-c "SELECT count(*) FROM public.bench_questions q, code.search(q.q, k => 10, mode => '$mode') s WHERE q.i = $b" |
				sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' > "$work/t.txt"
			sed -n 1p "$work/t.txt" >> "$work/first.txt"; sed -n 2p "$work/t.txt" >> "$work/second.txt"
		done
		result first_call "$mode$1" 1 "$(med "$work/first.txt")" ms
		result second_call "$mode$1" 1 "$(med "$work/second.txt")" ms
	done
	: > "$work/login.txt"
	for s in $(seq 1 "$SESSIONS"); do
		t0=$(date +%s%N); psql -qAtX -c "SELECT 1" >/dev/null; t1=$(date +%s%N)
		awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.3f\n", ns / 1e6 }' >> "$work/login.txt"
	done
	result session_select1 "login$1" 1 "$(med "$work/login.txt")" ms
}
first_calls ""
if [ "${WARMUP_AB:-1}" = 1 ] && [ -f "$(pg_config --pkglibdir)/codevec_session.so" ]; then
	psql -qX -c "ALTER DATABASE $PGDATABASE SET session_preload_libraries = 'codevec_session'"
	psql -qAtX -c "SHOW codevec_session.warmup_result" | sed 's/^/# warm-up of a new session: /'
	first_calls "-warmup"
	psql -qX -c "ALTER DATABASE $PGDATABASE RESET session_preload_libraries"
fi
# embed() alone: its model load is the encoder's, not code.search's
: > "$work/first.txt"; : > "$work/second.txt"
for s in $(seq 1 "$SESSIONS"); do
	psql -qAtX -c '\timing on' -c "SELECT embed('first call $s') IS NOT NULL" -c "SELECT embed('second call $s') IS NOT NULL" |
		sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' > "$work/t.txt"
	sed -n 1p "$work/t.txt" >> "$work/first.txt"; sed -n 2p "$work/t.txt" >> "$work/second.txt"
done
result first_call embed 1 "$(med "$work/first.txt")" ms
result second_call embed 1 "$(med "$work/second.txt")" ms

# what ran where, for the record
psql -qAtX -c "SELECT 'gpu: ' || state || ', ' || coalesce(device, '') || ', requests ' || requests || ', fallbacks ' || fallbacks FROM codevec_gpu_status()" | sed 's/^/# /'
psql -qAtX -c "SELECT 'snippets ' || (SELECT count(*) FROM code.snippets) || ', bm25 blocks ' || (SELECT count(*) FROM code.bm25_postings) || ', block_shift ' || block_shift FROM code.bm25_params" | sed 's/^/# /'
psql -qX -c "SET codevec.device = auto" -c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT id FROM code.search('parse a command line argument as an integer', k => 10)" |
	sed 's/^/# /' | head -80
rm -rf "$work"
