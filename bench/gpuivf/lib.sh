# shellcheck shell=bash disable=SC2154  # work, T and top are the caller's
# bench/gpuivf/lib.sh — helpers shared by compare.sh, pgvector.sh and
# breakdown.sh (sourced; they run on the CUDA host, on the server of
# test/gpu/setup.sh). The caller sets work (a scratch folder) and T
# (seconds per pgbench row) first.
#
#   ms START_NS            milliseconds since START_NS (date +%s%N)
#   mem                    the GPU service's memory_used_mb
#   pctl LOG...            p50 and p99 latency (us) of pgbench -l logs
#   bench NAME PGOPTIONS SQL CLIENTS...
#                          pgbench -M prepared, T s per client count, over
#                          `\set q random(1, 1000)` and SQL; one line
#                          RESULT,NAME,clients=C,qps=,p50_us=,p99_us= each
#   install_pgvector_kit   pgvector from .gpukit/pgvector.tar.xz into the
#                          server, when the kit has it and the server lacks it

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
mem() { psql -qAtX -c "SELECT memory_used_mb FROM codevec_gpu_status()"; }
pctl() { cat "$@" | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {printf "%d %d", a[int(NR*0.5)+1], a[int(NR*0.99)+1]}'; }

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
