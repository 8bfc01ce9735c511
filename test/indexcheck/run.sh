#!/usr/bin/env bash
# test/indexcheck/run.sh — codevec_index_check(index) (issue 17).
#
# Its own cluster (test/cluster.sh, the PostgreSQL that PG_CONFIG names,
# data checksums off so damage.py can edit pages). A table with a flat
# (cosine) and an IVF (l2, 8 lists) gpuivf index and some NULL vectors:
#   - sound indexes pass, and the summary row agrees with counts made in
#     SQL: heap_rows = the rows with a vector; index_tuples = heap_rows
#     plus the deleted and updated rows not yet vacuumed, = heap_rows after
#     VACUUM; dead_tuples and data_pages as the pages say (pageinspect-free:
#     checked for consistency only);
#   - the error cases: a table, a btree index, a partitioned index (42809;
#     its partition's index passes), an invalid index (0A000), no SELECT on
#     the table (42501);
#   - damage written into the index file while the server is stopped
#     (damage.py: a tuple's heap TID, a vector element, the metapage's
#     dims, a chain that loops, a heap TID twice): each is reported as
#     XX002 with a detail naming it, and the restored file passes again.
# Ends with "N passed, N failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
TMP=$(mktemp -d /tmp/indexcheck-test.XXXXXX); chmod 755 "$TMP"
PASS=0; FAIL=0; N=0
source "$ROOT/test/tap.sh"	# ok, is, like, skip, finish
cleanup() { bash "$ROOT/test/cluster.sh" stop "$TMP/c" immediate >/dev/null 2>&1; rm -rf "$TMP"; }
trap cleanup EXIT
freeport() { local p=$1; while [ -e "/tmp/.s.PGSQL.$p" ]; do p=$((p + 1)); done; echo "$p"; }

# 18 turns data checksums on by default; 15's initdb has no such option
bindir=$(bash "$ROOT/test/cluster.sh" bindir)
if "$bindir/initdb" --help | grep -q -- --no-data-checksums; then export CLUSTER_INITDB_OPTS=--no-data-checksums; fi
port=$(freeport 5671)
eval "$(bash "$ROOT/test/cluster.sh" start "$TMP/c" "$port")" || { ok 1 "cluster starts"; finish; }
Q() { psql -X -A -t -q -v ON_ERROR_STOP=1 -h /tmp -p "$port" -U postgres -d postgres -c "SET client_min_messages = warning" -c "SET codevec.device = cpu" "$@"; }
# the SQLSTATE and detail of a failing statement (psql's VERBOSITY verbose)
E() { psql -X -A -t -q -h /tmp -p "$port" -U postgres -d postgres -v VERBOSITY=verbose -c "SET codevec.device = cpu" "$@" 2>&1 | grep -E '^(ERROR|DETAIL)' | tr '\n' ' '; }

Q -c "CREATE EXTENSION codevec" -c "SELECT setseed(0.17)" \
	-c "CREATE TABLE t (id int PRIMARY KEY, emb codevec(8))" \
	-c "INSERT INTO t SELECT i, CASE WHEN i % 50 = 0 THEN NULL ELSE ARRAY(SELECT random() - 0.5 FROM generate_series(1, 8) WHERE i > 0)::real[]::codevec END FROM generate_series(1, 3000) i" \
	-c "CREATE INDEX t_flat ON t USING gpuivf (emb codevec_cosine_ops)" \
	-c "CREATE INDEX t_ivf ON t USING gpuivf (emb codevec_l2_ops) WITH (lists = 8)" >/dev/null
ok $? "a table of 3000 rows (60 NULL vectors) with a flat and an IVF index"

summary() { Q -c "SELECT lists || ' ' || index_tuples || ' ' || heap_rows FROM codevec_index_check('$1')"; }
rows=$(Q -c "SELECT count(emb) FROM t")
is "$(summary t_flat)" "1 $rows $rows" "flat: sound; index_tuples = heap_rows = count(emb) = $rows"
is "$(summary t_ivf)" "8 $rows $rows" "IVF: sound; 8 lists, index_tuples = heap_rows = $rows"

# deletes and updates leave index tuples until VACUUM; inserts add some
Q -c "DELETE FROM t WHERE id % 10 = 1" -c "UPDATE t SET emb = l2_normalize(emb) WHERE id % 10 = 2 AND emb IS NOT NULL" \
	-c "INSERT INTO t SELECT i, ARRAY(SELECT random() - 0.5 FROM generate_series(1, 8) WHERE i > 0)::real[]::codevec FROM generate_series(3001, 3700) i" >/dev/null
deleted=$(Q -c "SELECT count(*) FROM generate_series(1, 3000) i WHERE i % 10 = 1 AND i % 50 <> 0")
updated=$(Q -c "SELECT count(*) FROM generate_series(1, 3000) i WHERE i % 10 = 2 AND i % 50 <> 0")
rows=$(Q -c "SELECT count(emb) FROM t")
for ix in t_flat t_ivf; do
	is "$(Q -c "SELECT index_tuples || ' ' || heap_rows FROM codevec_index_check('$ix')")" "$((rows + deleted + updated)) $rows" \
		"$ix after deletes, vector updates and inserts: index_tuples = visible rows $rows + $deleted deleted + $updated updated"
done
Q -c "VACUUM t" >/dev/null
for ix in t_flat t_ivf; do
	r=$(Q -c "SELECT index_tuples || ' ' || heap_rows || ' ' || (dead_tuples >= 0) || ' ' || (data_pages >= lists) FROM codevec_index_check('$ix')")
	is "$r" "$rows $rows true true" "$ix after VACUUM: index_tuples = heap_rows = $rows"
done

# errors
like "$(E -c "SELECT codevec_index_check('t')")" "ERROR:  42809" "a table: 42809"
Q -c "CREATE INDEX t_id ON t (id)" >/dev/null
like "$(E -c "SELECT codevec_index_check('t_id')")" "ERROR:  42809: index \"t_id\" is not a gpuivf index" "a btree index: 42809"
Q -c "CREATE TABLE tp (id int, emb codevec(8)) PARTITION BY RANGE (id)" -c "CREATE TABLE tp1 PARTITION OF tp FOR VALUES FROM (0) TO (100)" \
	-c "INSERT INTO tp SELECT i, ARRAY[i, 1, 2, 3, 4, 5, 6, 7]::real[]::codevec FROM generate_series(0, 99) i" \
	-c "CREATE INDEX tp_emb ON tp USING gpuivf (emb codevec_l2_ops)" >/dev/null
like "$(E -c "SELECT codevec_index_check('tp_emb')")" "ERROR:  42809: index \"tp_emb\" is a partitioned index" "a partitioned index: 42809"
is "$(Q -c "SELECT index_tuples FROM codevec_index_check((SELECT indexrelid FROM pg_index WHERE indrelid = 'tp1'::regclass))")" 100 \
	"its partition's index passes (100 tuples)"
Q -c "CREATE ROLE cv_nobody LOGIN" >/dev/null
like "$(E -c "SET ROLE cv_nobody" -c "SELECT codevec_index_check('t_flat')")" "ERROR:  42501" "no SELECT on the table: 42501"
Q -c "CREATE INDEX t_bad ON t USING gpuivf (emb codevec_l2_ops)" -c "UPDATE pg_index SET indisvalid = false WHERE indexrelid = 't_bad'::regclass" >/dev/null
like "$(E -c "SELECT codevec_index_check('t_bad')")" "ERROR:  0A000: cannot check index \"t_bad\"" "an invalid index: 0A000"
Q -c "DROP INDEX t_bad" >/dev/null
is "$(Q -c "SELECT codevec_index_check(NULL)")" "" "NULL: NULL (strict)"

# damage, server stopped: each reported, then the file restored
Q -c "CHECKPOINT" >/dev/null
damage() {	# index kind pattern
	local f="$TMP/c/data/$(Q -c "SELECT pg_relation_filepath('$1')")"
	bash "$ROOT/test/cluster.sh" stop "$TMP/c" >/dev/null
	cp "$f" "$TMP/saved"
	local what; what=$(python3 "$HERE/damage.py" "$f" "$2")
	bash "$ROOT/test/cluster.sh" start "$TMP/c" "$port" >/dev/null
	like "$(E -c "SELECT codevec_index_check('$1')")" "$3" "$1, $what: XX002 naming it"
	bash "$ROOT/test/cluster.sh" stop "$TMP/c" >/dev/null
	cp "$TMP/saved" "$f"
	bash "$ROOT/test/cluster.sh" start "$TMP/c" "$port" >/dev/null
}
damage t_flat tid "ERROR:  XX002: gpuivf index \"t_flat\" is corrupted DETAIL:  Heap row ([0-9]*,[0-9]*) of \"t\" is missing from the index"
damage t_ivf vector "ERROR:  XX002: .*DETAIL:  The index tuple of heap row ([0-9]*,[0-9]*) holds another vector than the row"
damage t_ivf dims "ERROR:  XX002: .*DETAIL:  The metapage says 9 dimensions; the indexed column has 8"
damage t_flat cycle "ERROR:  XX002: .*DETAIL:  List 0's chain reaches block [0-9]* a second time"
damage t_ivf duplicate "ERROR:  XX002: .*DETAIL:  Heap TID ([0-9]*,[0-9]*) is in the index twice"
for ix in t_flat t_ivf; do
	is "$(Q -c "SELECT index_tuples = heap_rows FROM codevec_index_check('$ix')")" t "$ix restored: sound again"
done
is "$(grep -c 'terminated by signal\|PANIC' "$TMP/c/server.log")" 0 "no backend crashed"
finish
