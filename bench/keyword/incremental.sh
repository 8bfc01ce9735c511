#!/usr/bin/env bash
# bench/keyword/incremental.sh -- what keeping BM25 exact costs on a large
# incremental load (issue 21): change DIRS of the loaded tree (a comment
# appended to every .c/.h file, so each is re-parsed and its snippets
# rewritten), load it (A) with the BM25 statement triggers keeping the
# blocks, then change them again and load (B) with BM25 marked not built
# (the triggers do nothing) followed by a full code.bm25_refresh().
#
#   DB=linux TREE=/tmp/bm25/linux-source-6.1 bash bench/keyword/incremental.sh
#
# DIRS (default "drivers/scsi drivers/usb": 40,255 snippets, 5% of the
# kernel) are relative to TREE, which must be the tree $DB was loaded from
# (run.sh's load step) with BM25 built.  The tree's files are modified in
# place (unpack it again afterwards).  Prints the loader's timing lines.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
export PGDATABASE=${DB:-linux}
TREE=${TREE:-/tmp/bm25/linux-source-6.1}
DIRS=${DIRS:-drivers/scsi drivers/usb}
LOADER=${LOADER:-$ROOT/loaders/codevec-load}
REPO=${REPO:-linux}

touch_files() {		# touch_files TAG: append a comment to every .c / .h of DIRS
	local d
	for d in $DIRS; do
		find "$TREE/$d" -type f \( -name '*.c' -o -name '*.h' \) -exec sh -c 'printf "\n/* bench %s */\n" "$0" >> "$1"' "$1" {} \;
	done
}

[ "$(psql -X -At -c "SELECT built FROM code.bm25_params")" = t ] || { echo "BM25 is not built in $PGDATABASE" >&2; exit 2; }
echo "== A: the triggers keep the blocks"
touch_files A
/usr/bin/time -f 'A wall %e s' "$LOADER" --no-progress --no-embed --repo "$REPO" "$TREE" 2>&1 | grep -E 'snippets|time:|wall'
echo "== B: BM25 not built (the triggers do nothing), then a refresh"
psql -X -q -c "UPDATE code.bm25_params SET built = false"
touch_files B
/usr/bin/time -f 'B wall %e s' "$LOADER" --no-progress --no-embed --no-bm25 --repo "$REPO" "$TREE" 2>&1 | grep -E 'snippets|time:|wall'
psql -X -c '\timing on' -c "SELECT code.bm25_refresh()" -c "VACUUM ANALYZE code.bm25_postings" | grep -E 'Time'
