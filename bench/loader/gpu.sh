#!/usr/bin/env bash
# bench/loader/gpu.sh -- issue 23 on the CUDA host (as root, test/gpu/setup.sh's
# server with the GPU service): codevec-load parses, stores and embeds a real
# tree through the GPU service; then two incremental re-runs after 10 files
# changed each (right after the load, then after VACUUM ANALYZE), with the
# plans of their slow statements; then the Python anchor
# (bench/loader/anchor.py: chunks, sentence-transformers fp16 batch 256,
# binary COPY) loads the same tree, in the same run.
#
#   bash bench/loader/gpu.sh [PATH...]
#   NARROW=0 ANCHOR=0 ...     skip the one-writer load / the Python anchor
#   REFRESH_AB=0 INCR=0 ...   skip the BM25 build A/B / the incremental runs
#   MODEL=DIR ...             the anchor's model (default .gpukit/minilm-f16)
#   LOAD=0 ...                skip the default load too (e.g. the anchor alone, in a
#                             second call on the same warm host)
#
# Kit: bash test/gpu/pack.sh on the Debian machine (builds the loader of this
# checkout into .gpukit/ext.tar.xz) and bash bench/encoder/run.sh pack (the
# model, .gpukit/minilm-f16); carry .gpukit.  The trees must be on the host
# (the Linux tree cannot travel): by default the transformers package of the
# host's PyTorch venv (2,681 .py files, 49,766 snippets on 2026-11-21) and
# the host's Python standard library /usr/lib/python3.12 (16,258 snippets),
# about 66,000 snippets, copied to /tmp/ingest-tree first (so that 10 files
# can be changed for the incremental run).  Everything goes to $OUT (or
# /tmp/ingest-out): the loader's summaries, the anchor's output, RESULT lines.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${OUT:-/tmp/ingest-out}
mkdir -p "$out"
trees=("$@")
set --		# setup.sh takes server settings as arguments: none here
source "$top/test/gpu/setup.sh"
if [ ${#trees[@]} -eq 0 ]; then
	tf=$(python3 -c 'import os, transformers; print(os.path.dirname(transformers.__file__))' 2>/dev/null)
	[ -n "$tf" ] && trees+=("$tf")
	[ -d /usr/lib/python3.12 ] && trees+=(/usr/lib/python3.12)
fi
[ ${#trees[@]} -gt 0 ] || { echo "no tree: pass PATH..."; exit 2; }
work=/tmp/ingest-tree
rm -rf "$work" && mkdir -p "$work"
copies=()
for t in "${trees[@]}"; do
	cp -r "$t" "$work/$(basename "$t")" && copies+=("$work/$(basename "$t")")
done
chmod -R a+rX "$work"
{
	echo "host: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/Mem:/ {print $2}') GiB"
	nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
	echo "server: $(psql -qAtX -c 'SHOW server_version'); commit $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)"
	echo "trees: ${trees[*]} ($(find "${copies[@]}" -name '*.py' | wc -l) .py files, $(du -sch "${copies[@]}" | tail -1 | cut -f1))"
	psql -qX -c "SELECT state, device, memory_total_mb FROM codevec_gpu_status()"
} | tee "$out/machine.txt"

# timed RUN COMMAND...: run it with its summary in $out/RUN.log, its wall
# seconds in $out/RUN.wall (and peak RSS with GNU time, when the host has it)
timed() {
	local run=$1 t0
	shift
	t0=$(date +%s.%N)
	if [ -x /usr/bin/time ]; then
		/usr/bin/time -v "$@" > /dev/null 2> "$out/$run.log"
	else
		"$@" > /dev/null 2> "$out/$run.log"
	fi
	awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}' > "$out/$run.wall"
}
# load RUN DB [OPTIONS...]: codevec-load into a fresh database, timed
load() {
	local run=$1 db=$2
	shift 2
	psql -qX -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db" >/dev/null
	timed "$run" codevec-load -d "$db" --no-progress "$@" "${copies[@]}"
	result "$run" "$db"
}
# result RUN DB: the summary, the counts, a RESULT line
result() {
	local run=$1 db=$2 wall rss n
	grep '^codevec-load:' "$out/$run.log"
	wall=$(cat "$out/$run.wall")
	rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$out/$run.log")
	n=$(psql -qAtX -d "$db" -c "SELECT count(*) FILTER (WHERE emb IS NOT NULL) || ' ' || count(*) FROM code.snippets")
	echo "RESULT,$run,embedded=${n% *},snippets=${n#* },wall_s=$wall,snippets_per_s=$(awk -v n="${n#* }" -v w="$wall" 'BEGIN {printf "%.0f", n / w}'),loader_rss_mib=${rss:-?}"
}

if [ "${LOAD:-1}" = 1 ]; then
	echo "== codevec-load, defaults (GPU service: batches of 1024, connections by the host's cores)"
	load loader ingest_cvl 2>&1 | tee "$out/loader.txt"
fi
if [ "${NARROW:-1}" = 1 ]; then
	echo "== codevec-load --connections 1 --embed-batch 64 (one writer, the old batch)"
	load loader-narrow ingest_narrow --connections 1 --embed-batch 64 2>&1 | tee "$out/loader-narrow.txt"
fi

# the BM25 build once more on the loaded tree, both ways, same run:
# code.bm25_refresh()'s one pass (codevec_bm25_build, what the load ran)
# and the SQL build it falls back to without it (hidden by a rename), each
# with half the host's cores as parallel maintenance workers (8 on the
# H200's 16, as many as the loader's writers there), with their
# statements' times (auto_explain) in $out/refresh-*.log
if [ "${REFRESH_AB:-1}" = 1 ]; then
	echo "== code.bm25_refresh() again: the one pass, then the SQL build in $(nproc) / 2 parallel workers"
	build="codevec_bm25_build(text, real[], real, real, double precision, integer)"
	refresh() {		# refresh RUN [SQL...]: time a refresh after the SQL, log its statements
		local run=$1 t0
		shift
		t0=$(date +%s.%N)
		psql -qX -d ingest_cvl -v ON_ERROR_STOP=1 -c "LOAD 'auto_explain'" -c "SET auto_explain.log_min_duration = 100" \
			-c "SET auto_explain.log_nested_statements = on" -c "SET auto_explain.log_level = notice" \
			-c "SET max_parallel_maintenance_workers = $(( $(nproc) / 2 ))" "$@" -c "SELECT code.bm25_refresh()" > "$out/refresh-$run.log" 2>&1
		echo "RESULT,refresh-$run,wall_s=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}')"
		grep -E 'duration:|Query Text' "$out/refresh-$run.log" | sed 's/^[^:]*: *//' | paste - - | cut -c1-140 | sed 's/^/#   /'
	}
	refresh onepass | tee -a "$out/refresh.txt"
	# in a transaction psql leaves without COMMIT: the rename is undone
	refresh sql -c "BEGIN" -c "ALTER FUNCTION $build RENAME TO codevec_bm25_build_hidden" | tee -a "$out/refresh.txt"
fi

# incremental RUN SKIP: 10 files changed (a function appended to each; the
# files from the SKIP-th of every 97 on), then codevec-load again, with the
# plans of its statements that took 200 ms or more (auto_explain, nested
# statements too: the BM25 triggers) in $out/RUN-plans.log and what the
# server's backends waited on, sampled every 0.2 s, in $out/RUN-waits.txt
# (Python or C files, whichever the trees have more of: the Linux tree has
# 144 .py files, of which one passed the filter, so one file changed there)
ext=py
[ "$(find "${copies[@]}" -name '*.c' | wc -l)" -gt "$(find "${copies[@]}" -name '*.py' | wc -l)" ] && ext=c
incremental() {
	local run=$1 skip=$2 i=0 log size sampler
	echo "== $run: 10 .$ext files changed (a function appended to each), then codevec-load again"
	while IFS= read -r f; do
		if [ "$ext" = c ]; then
			printf '\n/* Added by bench/loader/gpu.sh. */\nint ingest_bench_%s_%d(int x)\n{\n\treturn x + %d;\n}\n' "$run" "$i" "$i" >> "$f"
		else
			printf '\n\ndef ingest_bench_%s_%d(x):\n    """Added by bench/loader/gpu.sh."""\n    return x + %d\n' "$run" "$i" "$i" >> "$f"
		fi
		i=$((i + 1))
	done < <(find "${copies[@]}" -name "*.$ext" -size +2k | sort | awk -v s="$skip" 'NR % 97 == s' | head -10)
	log=$(psql -qAtX -c "SELECT current_setting('data_directory')")/server.log
	size=$(stat -c %s "$log" 2>/dev/null || echo 0)
	( while :; do
		psql -qAtX -c "SELECT now()::time(1), pid, wait_event_type, wait_event, state, left(regexp_replace(query, '\s+', ' ', 'g'), 90)
			FROM pg_stat_activity WHERE datname = 'ingest_cvl' AND pid <> pg_backend_pid() AND state <> 'idle'"
		sleep 0.2
	done ) > "$out/$run-waits.txt" 2>&1 &
	sampler=$!
	local explain=
	[ -e "$(pg_config --pkglibdir)/auto_explain.so" ] &&
		explain="-c session_preload_libraries=auto_explain -c auto_explain.log_min_duration=200 -c auto_explain.log_nested_statements=on -c auto_explain.log_analyze=on -c auto_explain.log_buffers=on"
	PGOPTIONS="$explain" timed "$run" codevec-load -d ingest_cvl --no-progress "${copies[@]}"
	kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null
	tail -c +"$((size + 1))" "$log" > "$out/$run-plans.log"
	result "$run" ingest_cvl | tee "$out/$run.txt"
	echo "# $(grep -c 'duration:' "$out/$run-plans.log") statements of 200 ms or more (plans in $run-plans.log)"
	psql -qAtX -d ingest_cvl -c "SELECT relname || ': live ' || n_live_tup || ', analyzed ' || coalesce(greatest(last_analyze, last_autoanalyze)::time(0)::text, 'never')
		FROM pg_stat_user_tables WHERE schemaname = 'code' ORDER BY relname" | sed 's/^/# /'
}
# right after the load (autovacuum may not have analyzed the new rows yet),
# then again after VACUUM ANALYZE of the schema's tables
if [ "${INCR:-1}" = 1 ]; then
	incremental incremental 1
	psql -qX -d ingest_cvl -c '\timing on' -c "VACUUM ANALYZE code.files, code.snippets, code.bm25_terms, code.bm25_postings" | tee "$out/analyze.txt"
	incremental incremental-analyzed 50
fi
if [ "${ANCHOR:-1}" = 1 ]; then
	echo "== the anchor on the same trees (after the incremental runs: 20 functions more)"
	psql -qX -c "DROP DATABASE IF EXISTS ingest_anchor" -c "CREATE DATABASE ingest_anchor" >/dev/null
	psql -qX -d ingest_anchor -c "CREATE EXTENSION codevec" >/dev/null
	python3 "$top/bench/loader/anchor.py" --model "${MODEL:-$top/.gpukit/minilm-f16}" -d ingest_anchor "${copies[@]}" \
		2>&1 | tail -5 | tee "$out/anchor.txt"
fi
psql -qX -c "SELECT requests, batches, round(mean_batch::numeric, 1) AS mean_batch, max_batch, fallbacks FROM codevec_gpu_status()" | tee -a "$out/machine.txt"
