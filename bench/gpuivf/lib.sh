# shellcheck shell=bash disable=SC2154  # work, T and top are the caller's
# bench/gpuivf/lib.sh — helpers shared by compare.sh, pgvector.sh, multigpu.sh,
# breakdown.sh, pipeline.sh, mixed.sh, ../keyword/gpu.sh and ../keyword/search-ab.sh (sourced; they run on the CUDA host, on the server of
# test/gpu/setup.sh). The caller sets work (a scratch folder) and T
# (seconds per pgbench row) first.
#
#   ms START_NS            milliseconds since START_NS (date +%s%N)
#   mem                    the GPU service's memory_used_mb
#   pctl LOG...            p50 and p99 latency (us) of pgbench -l logs
#   tps OUT                the tps of a pgbench output file
#   bench NAME PGOPTIONS SQL CLIENTS...
#                          pgbench -M prepared, T s per client count, over
#                          `\set q random(1, 1000)` and SQL; one line
#                          RESULT,NAME,clients=C,qps=,p50_us=,p99_us= each
#   stages_snap            codevec_gpu_stages() now, into table stages0
#   stages_table           its deltas since stages_snap, a table of the
#                          stages that ran (timings, requests, mean and
#                          per-request microseconds), each line "#   "
#   install_pgvector_kit   pgvector from .gpukit/pgvector.tar.xz into the
#                          server, when the kit has it and the server lacks it
#   fill_random N          1,000 random queries into q (seed 7) and N random
#                          rows x 384 into t (seeds 42..49: 8 parts, 4
#                          streams generating and copying at once; ids
#                          repeat across parts), from .gpukit/gen; both
#                          tables exist

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
mem() { psql -qAtX -c "SELECT memory_used_mb FROM codevec_gpu_status()"; }
pctl() { cat "$@" | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {printf "%d %d", a[int(NR*0.5)+1], a[int(NR*0.99)+1]}'; }

tps() { sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$1" | head -1; }
stages_snap() { psql -qX -c "DROP TABLE IF EXISTS stages0" -c "CREATE TABLE stages0 AS SELECT * FROM codevec_gpu_stages()" >/dev/null; }
stages_table() {
	psql -qX -c "SELECT s.stage, s.timings - o.timings AS timings, s.requests - o.requests AS requests,
			round(((s.total_us - o.total_us) / nullif(s.timings - o.timings, 0))::numeric, 1) AS mean_us,
			round(((s.total_us - o.total_us) / nullif(s.requests - o.requests, 0))::numeric, 1) AS per_request_us
		FROM codevec_gpu_stages() s JOIN stages0 o USING (stage) WHERE s.timings > o.timings" | sed 's/^/#   /'
}

bench() {	# bench NAME PGOPTIONS SQL CLIENTS...
	local name=$1 opts=$2 sql=$3 c out p50 p99; shift 3
	printf '\\set q random(1, 1000)\n%s\n' "$sql" >"$work/b.sql"
	for c in "$@"; do
		rm -f "$work"/pgb.*
		out=$(PGOPTIONS="$opts" pgbench -n -M prepared -c "$c" -j "$c" -T "$T" -f "$work/b.sql" -l --log-prefix="$work/pgb" postgres 2>&1)
		read -r p50 p99 <<<"$(pctl "$work"/pgb.*)"
		echo "RESULT,$name,clients=$c,qps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | cut -d. -f1),p50_us=$p50,p99_us=$p99"
	done
}

install_pgvector_kit() {
	if [ -f "$top/.gpukit/pgvector.tar.xz" ] && [ ! -f "$(pg_config --pkglibdir)/vector.so" ]; then
		tar xJf "$top/.gpukit/pgvector.tar.xz" -C /tmp
		cp /tmp/pgvkit/vector.so "$(pg_config --pkglibdir)/"
		cp /tmp/pgvkit/vector.control /tmp/pgvkit/vector--*.sql "$(pg_config --sharedir)/extension/"
	fi
}

fill_random() {
	local n=$1 per s
	"$top/.gpukit/gen" 1000 384 7 >"$work/q.bin"
	psql -qX -c "\\copy q FROM '$work/q.bin' WITH (FORMAT binary)"
	per=$(( (n + 7) / 8 ))
	for s in 0 1 2 3; do
		( for p in $s $((s + 4)); do
			"$top/.gpukit/gen" "$per" 384 $((42 + p)) >"$work/v$p.bin" &&
			psql -qX -c "\\copy t FROM '$work/v$p.bin' WITH (FORMAT binary)"; rm -f "$work/v$p.bin"
		  done ) &
	done
	wait
}
