#!/usr/bin/env bash
# bench/loader/durability.sh -- what synchronous commits cost codevec-load.
#
#   bash bench/loader/durability.sh BASE_LOADER NEW_LOADER [TREE] [ROUNDS]
#
# Loads TREE (default /usr/lib/python3) into an empty database with
# bench/loader/run.sh (--no-embed; the first load builds the BM25 postings),
# with two loader builds alternated ROUNDS times (default 2): BASE (commits
# with synchronous_commit = off, the loader before December 2026) and NEW
# (the server's synchronous_commit, on), each with the default batches
# (500 files a transaction) and with --batch-files=10 (fifty times the
# commits: the worst case the crash test uses).  Its own cluster
# (test/cluster.sh, port CVL_DUR_PORT, default 5671) with fsync = on: the
# test clusters run with fsync off, which would hide the WAL flush each
# synchronous commit waits for.  Prints a markdown table: wall time and
# CPU of the first load, the server backends' CPU (summed), and the load
# average when each load started (the machine is shared).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BASE=${1:?usage: durability.sh BASE_LOADER NEW_LOADER [TREE] [ROUNDS]}
NEW=${2:?usage: durability.sh BASE_LOADER NEW_LOADER [TREE] [ROUNDS]}
TREE=${3:-/usr/lib/python3}
ROUNDS=${4:-2}
WORK=$(mktemp -d /tmp/cvl-durability.XXXXXX)
chmod 755 "$WORK"
port=${CVL_DUR_PORT:-5671}
while [ -e "/tmp/.s.PGSQL.$port" ]; do port=$((port + 1)); done
trap 'bash "$ROOT/test/cluster.sh" stop "$WORK/cluster" >/dev/null 2>&1 || true; rm -rf "$WORK/cluster"' EXIT
# fsync on (test/cluster.sh writes fsync = off first; the later line wins)
eval "$(bash "$ROOT/test/cluster.sh" start "$WORK/cluster" "$port" fsync=on)"
[ "$(psql -X -A -t -q -c 'SHOW fsync')" = on ] || { echo "fsync is not on" >&2; exit 1; }

echo "| round | loader | batches | first load wall | loader CPU | server backends CPU | load average at start | synchronous_commit |"
echo "|---|---|---|---|---|---|---|---|"
for r in $(seq 1 "$ROUNDS"); do
	for which in base new; do
		loader=$BASE; [ "$which" = new ] && loader=$NEW
		for opts in "" "--batch-files=10"; do
			out=$(CVL_BENCH_DIR="$WORK/$which" LOADER=$loader LOADER_OPTS=$opts \
				nice -n 10 bash "$HERE/run.sh" "$TREE" 2>/dev/null)
			wall=$(sed -n 's/^### first load: wall \([^,]*\),.*/\1/p' <<<"$out")
			cpu=$(sed -n '/^### first load/,/^CPU/ s/^CPU: loader \([0-9.]*\) s.*server backends \([0-9.]*\) s.*start \(.*\)$/\1|\2|\3/p' <<<"$out")
			# what the loader's sessions commit with: ask as the loader would
			sc=off
			[ "$which" = new ] && sc=$(psql -X -A -t -q -c 'SHOW synchronous_commit')
			echo "| $r | $which | ${opts:-500 files} | $wall | ${cpu%%|*} s | $(cut -d'|' -f2 <<<"$cpu") s | ${cpu##*|} | $sc |"
			echo "$out" >"$WORK/$which-$r${opts:+-b10}.md"
		done
	done
done
echo
echo "machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(free -g | awk '/Mem:/ {print $2}') GiB;" \
	"server $(psql -X -A -t -q -c 'SHOW server_version'), fsync on; tree $TREE" \
	"($(find "$TREE" -type f | wc -l) files, $(du -sh "$TREE" | cut -f1)); commit $(git -C "$ROOT" rev-parse --short HEAD);" \
	"raw reports in $WORK"
