#!/usr/bin/env bash
# tools/shards.sh -- set up and load a sharded codevec: N shard databases,
# each a full codevec database (its own gpuivf index, GPU service and BM25
# postings), and a coordinator whose code.repos, code.files and
# code.snippets are partitioned tables of postgres_fdw foreign partitions,
# one per shard (shards/README.md has the design).
#
#   tools/shards.sh init SHARD_CONNINFO NUMBER
#       make a database a shard: codevec's extension and codevec-load's
#       schema if missing, shards/shard.sql, code.shard_init(NUMBER) (its
#       ids are NUMBER * 2^32 + 1 .. (NUMBER + 1) * 2^32 - 1, NUMBER 0..511). Before any
#       load into it.
#   tools/shards.sh setup COORD_CONNINFO SHARD_CONNINFO...
#       make COORD the coordinator of these shards, numbered 0, 1, ... in
#       the order given (each made by init with that number): postgres_fdw,
#       shards/coordinator.sql, code.shard_add() for each (checks codevec's
#       version, the model and the dimension: a mismatch is refused with
#       its SQLSTATE and nothing is attached), then codevec-load's search
#       surface (code.search ...) and the BM25 postings over all shards.
#   tools/shards.sh load COORD_CONNINFO [codevec-load options] [--repo NAME] PATH
#       codevec-load --coordinator COORD_CONNINFO ...: load one repository
#       (NAME, default PATH's base name) into the shard code.shard_for(NAME,
#       N) names (incremental as always), then bring the coordinator's BM25
#       postings and statistics up to date (code.shard_refresh(); with
#       --no-bm25 not: run refresh after the last of many loads).
#   tools/shards.sh shard-of COORD_CONNINFO NAME
#       print the number and conninfo of the shard NAME is loaded into.
#   tools/shards.sh refresh COORD_CONNINFO
#       rebuild the coordinator's BM25 postings from every shard
#       and the planner's statistics of every shard (code.shard_refresh():
#       global df, n and average length, so keyword scores equal one
#       server's); after loading shards directly.
#   tools/shards.sh copy COORD_CONNINFO TARGET_CONNINFO
#       copy every row of every shard, ids kept, into one plain codevec
#       database (made if needed: extension, codevec-load's schema), then
#       build its BM25 postings: the same data on one server (what
#       test/shards compares the coordinator with; also a way back from
#       shards to one server).
#   tools/shards.sh status COORD_CONNINFO
#       each shard's number, server, reachability and snippet count.
#
# Conninfos are libpq key=value strings (host=/tmp port=5661 dbname=code
# user=postgres). Writing through the coordinator is not supported:
# codevec-load upserts with ON CONFLICT ... DO UPDATE, which postgres_fdw
# cannot send; `load` (codevec-load --coordinator) routes by name instead.
# Exit status: 0 ok, 1 an error (psql's message on stderr), 2 usage; `load`
# exits with codevec-load's status (1 partial, 3 database: its --help).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
LOADER=${LOADER:-$top/loaders/codevec-load}
[ -x "$LOADER" ] || LOADER=codevec-load

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
sql() {		# sql CONNINFO ARGS...: psql that stops at the first error
	local c=$1; shift
	PGOPTIONS="${PGOPTIONS:-} -c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$c" "$@"
}

cmd=${1:-}; [ -n "$cmd" ] || usage; shift
case "$cmd" in
init)
	[ $# -eq 2 ] || usage
	sql "$1" -c "CREATE EXTENSION IF NOT EXISTS codevec"
	"$LOADER" -q -d "$1" --embed-only
	sql "$1" -f "$top/shards/shard.sql" -c "SELECT code.shard_init($2)" >/dev/null
	;;
setup)
	[ $# -ge 2 ] || usage
	coord=$1; shift
	sql "$coord" -c "CREATE EXTENSION IF NOT EXISTS codevec" -c "CREATE EXTENSION IF NOT EXISTS postgres_fdw" \
		-f "$top/shards/coordinator.sql"
	i=0
	for s in "$@"; do
		# one transaction a shard: a refused shard leaves nothing behind
		sql "$coord" -At -v conn="$s" <<<"SELECT code.shard_add($i, :'conn');" >/dev/null ||
			{ echo "shards: shard $i ($s) refused" >&2; exit 1; }
		i=$((i + 1))
	done
	# codevec-load's search surface on the partitioned tables (its CREATE TABLE
	# IF NOT EXISTS leaves them as they are), then the global BM25 postings
	"$LOADER" -q -d "$coord" --embed-only
	sql "$coord" -c "SELECT code.shard_refresh()" >/dev/null
	;;
shard-of)
	[ $# -eq 2 ] || usage
	sql "$1" -At -F ' ' -v name="$2" <<<"SELECT s.shard, s.conninfo FROM code_shards.shards s
		WHERE s.shard = code.shard_for(:'name', (SELECT count(*)::integer FROM code_shards.shards));"
	;;
load)
	[ $# -ge 2 ] || usage
	coord=$1; shift
	exec "$LOADER" --coordinator "$coord" "$@"
	;;
refresh)
	[ $# -eq 1 ] || usage
	sql "$1" -c "SELECT code.shard_refresh()" >/dev/null
	;;
copy)
	[ $# -eq 2 ] || usage
	sql "$2" -c "CREATE EXTENSION IF NOT EXISTS codevec"
	"$LOADER" -q -d "$2" --embed-only
	for t in repos files snippets; do
		cols=$(sql "$2" -At <<<"SELECT string_agg(quote_ident(attname), ', ' ORDER BY attnum) FROM pg_attribute
			WHERE attrelid = 'code.$t'::regclass AND attnum > 0 AND NOT attisdropped;")
		sql "$1" -c "COPY (SELECT $cols FROM code.$t ORDER BY id) TO STDOUT" |
			sql "$2" -c "COPY code.$t ($cols) FROM STDIN"
		sql "$2" -At -c "SELECT setval('code.${t}_id_seq', max(id)) FROM code.$t" >/dev/null
	done
	sql "$2" -c "SELECT code.bm25_refresh()" -c "ANALYZE code.repos, code.files, code.snippets" >/dev/null
	;;
status)
	[ $# -eq 1 ] || usage
	sql "$1" -c "SELECT shard, server, conninfo FROM code_shards.shards ORDER BY shard"
	sql "$1" -c "SELECT tableoid::regclass AS partition, count(*) AS snippets FROM code.snippets GROUP BY 1 ORDER BY 1"
	;;
*)
	usage ;;
esac
