#!/usr/bin/env bash
# bench/loader/run.sh -- load the Linux kernel source with codevec-load
# (--no-embed) and report time, MB/s, files/s, snippets, peak RSS of the
# loader and of its server backend, and where the time goes.
#
#   bash bench/loader/run.sh [TREE]
#
# TREE defaults to Debian's linux-source-6.1 (apt-get install
# linux-source-6.1), unpacked once into ${CVL_BENCH_DIR:-/tmp/cvl-bench}.
# The server: the one the PG* variables name, or, when PGHOST is unset, a
# throwaway cluster started with test/cluster.sh (stopped at the end).
# Needs codevec-load built (make -C loaders) and the codevec extension
# installed on the server.  LOADER names another binary (a base build to
# compare with), LOADER_OPTS adds options (e.g. --connections 1).  Three
# loads: the first (everything new, then the BM25 postings), the second
# (nothing changed), the third after 10 files changed (a function appended
# to each; restored afterwards): issue 23's incremental target.  Writes the raw logs next to the results in
# $CVL_BENCH_DIR and prints a markdown table row.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LOADER=${LOADER:-$ROOT/loaders/codevec-load}
WORK=${CVL_BENCH_DIR:-/tmp/cvl-bench}
mkdir -p "$WORK"
chmod 755 "$WORK"

[ -x "$LOADER" ] || { echo "build the loader first: make -C loaders" >&2; exit 2; }

TREE=${1:-}
if [ -z "$TREE" ]; then
    TARBALL=/usr/src/linux-source-6.1.tar.xz
    [ -f "$TARBALL" ] || { echo "missing $TARBALL: apt-get install linux-source-6.1" >&2; exit 2; }
    TREE=$WORK/linux-source-6.1
    if [ ! -d "$TREE" ]; then
        echo "unpacking $TARBALL into $WORK" >&2
        tar -xJf "$TARBALL" -C "$WORK"
    fi
fi

CLUSTER=
if [ -z "${PGHOST:-}" ]; then
    CLUSTER=$WORK/cluster
    eval "$(bash "$ROOT/test/cluster.sh" start "$CLUSTER" "${CVL_BENCH_PORT:-5489}")"
    trap 'bash "$ROOT/test/cluster.sh" stop "$CLUSTER" >/dev/null 2>&1 || true' EXIT
fi
MAINTDB=${PGDATABASE:-postgres}
DB=cvl_bench
psql -X -q -d "$MAINTDB" -c "DROP DATABASE IF EXISTS $DB" -c "CREATE DATABASE $DB"
export PGDATABASE=$DB

# sample the peak RSS (VmHWM, the largest of any backend) and the CPU time
# (utime + stime, summed over the backends: the loader opens several) of
# the loader's backends while it runs
sample_server() {
    local peak=0 pid hwm ticks sum
    declare -A seen=()
    while :; do
        for pid in $(psql -X -A -t -q -d "$DB" -c "SELECT pid FROM pg_stat_activity
                     WHERE application_name = 'codevec-load'" 2>/dev/null); do
            hwm=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
            [ "${hwm:-0}" -gt "$peak" ] && peak=$hwm && echo "$peak" > "$WORK/server_rss_kb"
            ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat" 2>/dev/null || echo)
            [ -n "$ticks" ] && seen[$pid]=$ticks
        done
        sum=0
        for pid in "${!seen[@]}"; do sum=$((sum + ${seen[$pid]})); done
        echo "$sum" > "$WORK/server_cpu_ticks.tmp" && mv "$WORK/server_cpu_ticks.tmp" "$WORK/server_cpu_ticks"
        sleep 0.2
    done
}

run_load() {    # run_load LABEL
    echo 0 > "$WORK/server_rss_kb"
    echo 0 > "$WORK/server_cpu_ticks"
    sample_server & local sampler=$!
    cut -d" " -f1-3 /proc/loadavg > "$WORK/$1.loadavg"
    /usr/bin/time -v "$LOADER" --no-progress --no-embed --repo linux ${LOADER_OPTS:-} "$TREE" \
        > /dev/null 2> "$WORK/$1.log" || true
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
    cp "$WORK/server_rss_kb" "$WORK/$1.server_rss_kb"
    cp "$WORK/server_cpu_ticks" "$WORK/$1.server_cpu_ticks"
}

LOADAVG=$(cut -d" " -f1-3 /proc/loadavg)
echo "first load of $TREE ..." >&2
run_load first
echo "second load (nothing changed) ..." >&2
run_load second
# ten files changed (a function appended to each), loaded again, restored
CHANGED=$(find "$TREE" -name '*.c' -size +4k | sort | awk 'NR % 1500 == 1' | head -10)
mkdir -p "$WORK/orig"
i=0
for f in $CHANGED; do
    i=$((i + 1))
    cp -p "$f" "$WORK/orig/$i"
    printf '\nint cvl_bench_changed_%d(int x)\n{\n\treturn x + %d;\n}\n' "$i" "$i" >> "$f"
done
echo "third load ($i files changed) ..." >&2
run_load third
i=0
for f in $CHANGED; do i=$((i + 1)); cp -p "$WORK/orig/$i" "$f"; done

field() { grep -E "$2" "$WORK/$1.log" | head -1; }
report() {      # report LABEL
    local log=$WORK/$1.log
    local wall rss srv cpu scpu
    wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$log")
    rss=$(awk -F': ' '/Maximum resident set size/ {printf "%.0f", $2 / 1024}' "$log")
    cpu=$(awk -F': ' '/User time|System time/ {s += $2} END {printf "%.1f", s}' "$log")
    srv=$(awk '{printf "%.0f", $1 / 1024}' "$WORK/$1.server_rss_kb")
    scpu=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", $1 / hz}' "$WORK/$1.server_cpu_ticks")
    echo "### $1 load: wall $wall, loader peak RSS $rss MiB, server backend peak RSS $srv MiB (the largest backend)"
    echo "CPU: loader $cpu s (user+sys), server backends $scpu s (summed, sampled every 0.2 s); load average at its start $(cat "$WORK/$1.loadavg")"
    grep '^codevec-load:' "$log" | sed 's/^/    /'
}

cat <<EOF
## codevec-load on $(basename "$TREE")

- load average before the run: $LOADAVG (the machine is shared)
- machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GiB
- server: $(psql -X -A -t -q -c 'SHOW server_version'), shared_buffers $(psql -X -A -t -q -c 'SHOW shared_buffers')
- loader: $("$LOADER" --version | head -1), commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo uncommitted)
- tree: $(find "$TREE" -type f \( -name '*.c' -o -name '*.h' \) | wc -l) C files, $(du -sh "$TREE" | cut -f1) on disk
- database after the load: $(psql -X -A -t -q -c "SELECT pg_size_pretty(pg_database_size(current_database()))"), $(psql -X -A -t -q -c "SELECT count(*) FROM code.snippets") snippets in $(psql -X -A -t -q -c "SELECT count(*) FROM code.files") files

EOF
report first
echo
report second
echo
report third
