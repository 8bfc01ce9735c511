#!/usr/bin/env bash
# bench/shards/single.sh -- code.search on ONE server, this checkout's
# against an earlier commit's (issue 18: the sharding changes to
# code.search -- ties by id, final lookups by id = ANY -- must not slow one
# server down).
#
#   PG*=... bash bench/shards/single.sh [DATABASE] [REV]
#   # ROUNDS=5, CALLS_KEYWORD=2000, CALLS_VECTOR=20, Q="parse the message header"
#
# DATABASE holds codevec-load's schema as this checkout's codevec-load made
# it (code.search is this checkout's). REV (default: the commit before the
# change, 4959130) gives the other code.search: its loaders/schema.c is
# compiled with a two-line main that prints cvl_bm25_sql, and the statement
# creating code.search is run again under the name code.search_before.
# Then, alternating the two, ROUNDS times: the backend's CPU time per call
# (/proc/self/schedstat of the backend, read by pg_read_file before and
# after a plpgsql loop of PERFORM * FROM code.search...(Q, k => 10, mode)):
# CPU time is much less sensitive than wall-clock rates to the other jobs
# on a shared machine. Needs superuser (pg_read_file of /proc/self) and a
# server on this machine. Prints one line per (mode, function): the rounds'
# microseconds per call and their mean.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
DB=${1:-${PGDATABASE:-}}
REV=${2:-4959130}
ROUNDS=${ROUNDS:-5}
Q=${Q:-parse the message header}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bench-single.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
export PGDATABASE=$DB

git -C "$top" show "$REV:loaders/schema.c" >"$TMP/schema.c"
git -C "$top" show "$REV:loaders/cvl.h" >"$TMP/cvl.h"
printf '#include <stdio.h>\nextern const char *const cvl_bm25_sql;\nint main(void) { fputs(cvl_bm25_sql, stdout); return 0; }\n' >"$TMP/p.c"
cc -I"$TMP" -I"$(pg_config --includedir)" -o "$TMP/p" "$TMP/p.c" "$TMP/schema.c"
ext=$(psql -X -A -t -q -c "SELECT quote_ident(n.nspname) FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'codevec'")
cfg=$(psql -X -A -t -q -c "SELECT quote_literal(quote_ident(n.nspname) || '.codevec_code') FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'codevec'")
"$TMP/p" | sed -n '/^CREATE OR REPLACE FUNCTION code.search(/,$p' |
	sed "s/@EXT@/$ext/g; s/@CFG@/$cfg/g; s/FUNCTION code.search(/FUNCTION code.search_before(/" >"$TMP/before.sql"
psql -X -q -v ON_ERROR_STOP=1 -f "$TMP/before.sql"

cpu() {		# cpu FUNCTION MODE CALLS: backend CPU microseconds per call
	psql -X -A -t -q -v ON_ERROR_STOP=1 -c "SET codevec.device = cpu" -c "DO \$\$ DECLARE t0 bigint; t1 bigint; BEGIN
		PERFORM * FROM code.$1(\$q\$$Q\$q\$, k => 10, mode => '$2');
		t0 := split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint;
		FOR i IN 1..$3 LOOP PERFORM * FROM code.$1(\$q\$$Q\$q\$, k => 10, mode => '$2'); END LOOP;
		t1 := split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::bigint;
		RAISE NOTICE 'us %', round((t1 - t0) / $3 / 1000.0, 1);
	END \$\$" 2>&1 | sed -n 's/^NOTICE:  us //p'
}
echo "# $(date -u +%FT%TZ) database $DB, $(psql -X -A -t -q -c "SELECT count(*) FROM code.snippets") snippets; this checkout $(git -C "$top" rev-parse --short HEAD) against $REV; load $(cut -d' ' -f1-3 /proc/loadavg)"
for mode in keyword vector hybrid; do
	calls=${CALLS_KEYWORD:-2000}
	[ "$mode" = keyword ] || calls=${CALLS_VECTOR:-20}
	for r in $(seq 1 "$ROUNDS"); do
		for f in search search_before; do
			echo "$mode $f $(cpu "$f" "$mode" "$calls")"
		done
	done
done | awk '{ k = $1 " " $2; v[k] = v[k] " " $3; s[k] += $3; n[k]++; if (!(k in seen)) { seen[k] = 1; o[++m] = k } }
	END { printf "%-8s %-14s %s\n", "mode", "function", "CPU us per call (rounds) / mean"
	      for (i = 1; i <= m; i++) printf "%-8s %-14s%s / %.1f\n", substr(o[i], 1, index(o[i], " ") - 1), substr(o[i], index(o[i], " ") + 1), v[o[i]], s[o[i]] / n[o[i]] }'
psql -X -q -c "DROP FUNCTION code.search_before(text, integer, text, text, boolean, text, integer, integer, double precision)"
