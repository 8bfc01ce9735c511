#!/usr/bin/env bash
# bench/loader/cpu.sh -- CPU seconds of codevec-load and of the server for
# first loads (--no-embed, BM25 postings built at the end) of one tree,
# several builds alternated on one throwaway cluster.
#
#   flock /tmp/codevec-db.lock bash bench/loader/cpu.sh TREE ROUNDS NAME=DIR ...
#
# DIR is a checkout with the extension built (make CUDA=0) and
# loaders/codevec-load built; before each of its loads its extension is
# installed (make CUDA=0 install: system-wide, hence the lock on a shared
# machine) and the load goes into a fresh database.  Rounds alternate the
# builds (a b a b ...), so that the machine's load falls on both alike.
#
# Server CPU: user+sys of every process of the cluster over the load (the
# postmaster's children still running plus what it reaped: backends,
# parallel workers, checkpointer, WAL writer), from /proc, so it does not
# depend on sampling.  Loader CPU and peak RSS from /usr/bin/time -v;
# backends' peak RSS: the largest VmHWM among the postmaster's children,
# and the largest RssAnon (private), sampled every 0.2 s.  CVL_BENCH_PORT (5632), CVL_BENCH_DIR
# (/tmp/cvl-cpu), LOADER_OPTS (extra loader options).  Prints markdown.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
[ $# -ge 3 ] || { echo "usage: $0 TREE ROUNDS NAME=DIR ..." >&2; exit 2; }
TREE=$(cd "$1" && pwd)
ROUNDS=$2
shift 2
WORK=${CVL_BENCH_DIR:-/tmp/cvl-cpu}
mkdir -p "$WORK"
chmod 755 "$WORK"
CLUSTER=$WORK/cluster
eval "$(bash "$ROOT/test/cluster.sh" start "$CLUSTER" "${CVL_BENCH_PORT:-5632}")"
trap 'bash "$ROOT/test/cluster.sh" stop "$CLUSTER" >/dev/null 2>&1 || true' EXIT
HZ=$(getconf CLK_TCK)
PM=$(head -1 "$CLUSTER/data/postmaster.pid")

# the cluster's CPU so far, in clock ticks: the postmaster's own and its
# reaped children's, plus its children still running
server_ticks() {
	local t pid
	t=$(awk '{print $14 + $15 + $16 + $17}' "/proc/$PM/stat")
	for pid in $(ps -o pid= --ppid "$PM"); do
		t=$((t + $(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}

# the largest VmHWM (KiB) of the postmaster's children into $1, and the
# largest RssAnon (private memory; VmHWM also counts the shared buffers,
# dynamic shared memory and mapped files a backend touched) into $1.anon
sample_rss() {
	local peak=0 anon=0 pid hwm a
	while :; do
		for pid in $(ps -o pid= --ppid "$PM"); do
			read -r hwm a < <(awk '/VmHWM/ {h = $2} /RssAnon/ {a = $2} END {print h + 0, a + 0}' \
				"/proc/$pid/status" 2>/dev/null || echo 0 0)
			[ "${hwm:-0}" -gt "$peak" ] && peak=$hwm && echo "$peak" > "$1"
			[ "${a:-0}" -gt "$anon" ] && anon=$a && echo "$anon" > "$1.anon"
		done
		sleep 0.2
	done
}

echo "## codevec-load CPU on $(basename "$TREE") ($(find "$TREE" -type f \( -name '*.c' -o -name '*.h' \) | wc -l) C files, $(du -sh "$TREE" | cut -f1))"
echo
echo "- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GiB, shared"
echo "- server: $(psql -X -A -t -q -c 'SHOW server_version'), shared_buffers $(psql -X -A -t -q -c 'SHOW shared_buffers'), max_parallel_maintenance_workers $(psql -X -A -t -q -c 'SHOW max_parallel_maintenance_workers')"
for spec in "$@"; do
	echo "- ${spec%%=*}: ${spec#*=} (commit $(git -C "${spec#*=}" rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout'))"
done
echo
echo "| run | load average | wall | loader CPU | server CPU | loader + server | loader peak RSS | backend peak RSS (private) |"
echo "|---|---|---|---|---|---|---|---|"

MAINTDB=${PGDATABASE:-postgres}
for r in $(seq 1 "$ROUNDS"); do
	for spec in "$@"; do
		name=${spec%%=*}
		dir=${spec#*=}
		make -s -C "$dir" CUDA=0 install >"$WORK/install.log" 2>&1
		psql -X -q -d "$MAINTDB" -c "DROP DATABASE IF EXISTS cvl_cpu" -c "CREATE DATABASE cvl_cpu"
		log=$WORK/$name.$r.log
		echo 0 > "$WORK/rss"
		echo 0 > "$WORK/rss.anon"
		sample_rss "$WORK/rss" & sampler=$!
		load=$(cut -d" " -f1 /proc/loadavg)
		t0=$(server_ticks)
		PGDATABASE=cvl_cpu /usr/bin/time -v "$dir/loaders/codevec-load" --no-progress --no-embed \
			--repo linux ${LOADER_OPTS:-} "$TREE" >/dev/null 2>"$log" || true
		# the loader's backends end after it: wait for them
		while [ "$(psql -X -A -t -q -d "$MAINTDB" -c "SELECT count(*) FROM pg_stat_activity WHERE datname = 'cvl_cpu'")" != 0 ]; do
			sleep 0.1
		done
		t1=$(server_ticks)
		kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
		wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log")
		lcpu=$(awk -F': ' '/User time|System time/ {s += $2} END {printf "%.1f", s}' "$log")
		lrss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$log")
		scpu=$(awk -v a="$t0" -v b="$t1" -v hz="$HZ" 'BEGIN {printf "%.1f", (b - a) / hz}')
		srss=$(awk '{printf "%.0f", $1 / 1024}' "$WORK/rss")
		sanon=$(awk '{printf "%.0f", $1 / 1024}' "$WORK/rss.anon")
		tot=$(awk -v a="$lcpu" -v b="$scpu" 'BEGIN {printf "%.1f", a + b}')
		echo "| $name $r | $load | $wall | $lcpu s | $scpu s | $tot s | $lrss MiB | $srss MiB ($sanon MiB) |"
		grep '^codevec-load: \(snippets\|time\)' "$log" | sed 's/^/    /' > "$WORK/$name.$r.phases"
	done
done
echo
echo "The loader's own account of each run (parser threads' CPU; the writers' time waiting on the server is wall time):"
echo
for r in $(seq 1 "$ROUNDS"); do
	for spec in "$@"; do
		echo "$name $r:" | sed "s/^$name/${spec%%=*}/"
		cat "$WORK/${spec%%=*}.$r.phases"
	done
done
