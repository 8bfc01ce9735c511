#!/usr/bin/env bash
# test/search/bm25.sh -- BM25 keyword search (issue 21) on a real corpus:
# codevec_bm25_impacts / codevec_bm25_length, the posting blocks
# (codevec_bm25_pack / unpack / edit / block_max), the two exact top-k
# (codevec_bm25_blocks_topk, what code.bm25_search runs, and
# codevec_bm25_topk over impact-ordered lists made from the blocks) and the
# loader's code.bm25_* tables, triggers and functions, code.search on them.
#   - exactness: code.bm25_search's pruned top-k (k 1, 10, 100) equals a
#     full BM25 scoring of every snippet in Python (bm25ref.py, written from
#     the definition), ids and scores to the bit, on ~150 benchmark questions
#     and a few identifier queries; after a build, after inserts, deletes and
#     updates through the loader and plain SQL, and after a refresh; at
#     the default block size (16,384 ids: the whole corpus is one block,
#     pruned by its sub-blocks' directories), at 1024 ids and at 32 ids
#     (many blocks, no directories); without the directories; corrupt
#     directories are errors (XX001);
#   - statistics: n, df and the postings recounted in plain SQL, every
#     block's max_impact a bound of its postings;
#   - code.search keyword mode (with and without filters) against the
#     unpruned SQL scoring; the ts_rank path before a build and after TRUNCATE;
#   - errors with their SQLSTATE;
#   - memory: 20,000 calls of each set-returning function in one statement
#     hold no more memory than 200 (pg_backend_memory_contexts).
#
# Needs the PG* variables of a running PostgreSQL 15 server with codevec
# installed; makes a scratch database and drops it.  No embeddings needed
# (--no-embed).  Ends with "N passed, N failed"; exit status 1 on failure.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LOADER=${LOADER:-$ROOT/loaders/codevec-load}
PYLIB=${CVL_TEST_PYLIB:-/usr/lib/python3.11}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/bm25-test.XXXXXX")
chmod 755 "$TMP"
PASS=0
FAIL=0
N=0
DB=bm25_test_$$
MAINTDB=${PGDATABASE:-postgres}
cleanup() {
	psql -X -q -d "$MAINTDB" -c "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1
	rm -rf "$TMP"
}
trap cleanup EXIT

source "$ROOT/test/tap.sh"	# ok, is, like, skip, finish
Q() { psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$DB" -c "SET client_min_messages = warning" -c "$1"; }
STATE() {
	psql -X -q -d "$DB" -v VERBOSITY=verbose -c "SET client_min_messages = warning" -c "$1" 2>&1 >/dev/null |
		sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p' | head -1
}

if [ ! -x "$LOADER" ] || ! psql -X -q -d "$MAINTDB" -c "CREATE DATABASE $DB" >/dev/null 2>"$TMP/err"; then
	ok 1 "loader built and database reachable"; cat "$TMP/err"; finish
fi
export PGDATABASE=$DB
Q "CREATE EXTENSION codevec" >/dev/null
ok $? "codevec installs"

# ------------------------------------------------------------ the corpus
C=$TMP/corpus
mkdir -p "$C"
for d in email asyncio http logging json xml; do
	[ -d "$PYLIB/$d" ] && cp -r "$PYLIB/$d" "$C/" && rm -rf "$C/$d/__pycache__" "$C"/"$d"/*/__pycache__
done
"$LOADER" -q --no-embed --no-bm25 --repo stdlib "$C"
is $? 0 "a real corpus loads with --no-embed"
NSNIP=$(Q "SELECT count(*) FROM code.snippets")
ok $([ "$NSNIP" -ge 2000 ]; echo $?) "it has a few thousand snippets ($NSNIP)"
is "$(Q "SELECT built, n FROM code.bm25_params")" "f|0" "BM25 is not built by a load (nothing maintained yet)"

# the questions: every 16th of bench/quality's, and identifier queries
python3 - "$ROOT/bench/quality/queries.tsv.gz" > "$TMP/questions.csv" <<'PY'
import csv, gzip, sys
rows = [l.rstrip('\n').split('\t') for l in gzip.open(sys.argv[1], 'rt')][1:]
w = csv.writer(sys.stdout)
for r in rows[::16]:
    w.writerow([r[0], r[7]])
for i, q in enumerate(['JSONDecoder raw_decode', 'parse_headers', 'getLogger', 'zebra quux',
                       'asyncio.get_event_loop', 'make a message from bytes', 'x']):
    w.writerow([10000 + i, q])
PY
Q "CREATE TABLE public.test_questions (qid integer, q text)" >/dev/null
psql -X -q -d "$DB" -c "\\copy public.test_questions FROM '$TMP/questions.csv' WITH (FORMAT csv)"
NQ=$(Q "SELECT count(*) FROM public.test_questions")

# ts_rank before the build: code.search's keyword list is the old one
is "$(Q "SELECT string_agg(id::text, ',' ORDER BY keyword_rank) FROM code.search('parse email headers', k => 10, mode => 'keyword')")" \
	"$(Q "SELECT string_agg(id::text, ',') FROM (SELECT id FROM code.snippets WHERE tsv @@ code.keyword_query('parse email headers')
	      ORDER BY ts_rank(tsv, code.keyword_query('parse email headers')) DESC, id LIMIT 10) x")" \
	"before a build code.search ranks keywords by ts_rank"
is "$(STATE "SELECT * FROM code.bm25_search('x')")" 55000 "code.bm25_search before a build: 55000"

t0=$(date +%s.%N)
is "$(Q "SELECT code.bm25_refresh()")" t "code.bm25_refresh() builds ($(python3 -c "print('%.1f' % ($(date +%s.%N) - $t0))") s)"

# statistics and postings recounted in plain SQL
stats_check() {		# stats_check LABEL
	is "$(Q "SELECT n = (SELECT count(*) FROM code.snippets WHERE tsv IS NOT NULL) FROM code.bm25_params")" t \
		"$1: n is the number of snippets with a tsv"
	is "$(Q "SELECT count(*) FROM ((SELECT lexeme, df FROM code.bm25_terms WHERE df > 0
	         EXCEPT SELECT l, count(*) FROM code.snippets, unnest(tsvector_to_array(tsv)) l GROUP BY l)
	         UNION ALL (SELECT l, count(*) FROM code.snippets, unnest(tsvector_to_array(tsv)) l GROUP BY l
	         EXCEPT SELECT lexeme, df FROM code.bm25_terms)) x")" 0 \
		"$1: df of every lexeme equals a recount"
	is "$(Q "SELECT count(*) FROM (
	         (SELECT t.lexeme, x.impact, x.id FROM code.bm25_postings bp JOIN code.bm25_terms t USING (term),
	          code.bm25_params p, codevec_bm25_unpack(bp.postings, bp.block, p.block_shift) x
	          EXCEPT ALL SELECT i.lexeme, i.impact, s.id FROM code.snippets s, code.bm25_params p,
	          codevec_bm25_impacts(s.tsv, p.weights, p.k1, p.b, p.avgdl) i)
	         UNION ALL
	         (SELECT i.lexeme, i.impact, s.id FROM code.snippets s, code.bm25_params p,
	          codevec_bm25_impacts(s.tsv, p.weights, p.k1, p.b, p.avgdl) i
	          EXCEPT ALL SELECT t.lexeme, x.impact, x.id FROM code.bm25_postings bp JOIN code.bm25_terms t USING (term),
	          code.bm25_params p, codevec_bm25_unpack(bp.postings, bp.block, p.block_shift) x)) x")" 0 \
		"$1: the postings are exactly the impacts of every snippet ($(Q "SELECT count(*) FROM code.bm25_postings") blocks)"
	is "$(Q "SELECT count(*) FROM code.bm25_postings bp, code.bm25_params p
	         WHERE length(bp.postings) = 0 OR bp.max_impact < codevec_bm25_block_max(bp.postings, p.block_shift)")" 0 \
		"$1: no block is empty, every max_impact is at least its postings' largest impact"
	is "$(Q "SELECT count(*) FROM code.bm25_postings bp, code.bm25_params p
	         WHERE bp.subblocks IS DISTINCT FROM codevec_bm25_subblocks(bp.postings, p.block_shift)")" 0 \
		"$1: every block of 16 postings or more has the sub-block directory of its postings, no other block has one ($(Q "SELECT count(subblocks) FROM code.bm25_postings") directories)"
	# each directory against its postings recounted in SQL: the non-empty
	# sub-blocks of 64 ids, their first posting and count, and a bound at
	# least their largest impact and less than a step (the block's largest
	# impact / 255) above it
	is "$(Q "WITH d AS (SELECT bp.term, bp.block, u.* FROM code.bm25_postings bp, code.bm25_params p,
	           codevec_bm25_subblocks_unpack(bp.subblocks, bp.postings, p.block_shift) u WHERE bp.subblocks IS NOT NULL),
	         r AS (SELECT bp.term, bp.block, ((x.id - (bp.block::bigint << p.block_shift)) >> 6)::integer AS sub,
	           (min(x.o) - 1)::integer AS start, count(*)::integer AS count, max(x.impact) AS m,
	           max(max(x.impact)) OVER (PARTITION BY bp.term, bp.block) AS scale
	           FROM code.bm25_postings bp, code.bm25_params p,
	           codevec_bm25_unpack(bp.postings, bp.block, p.block_shift) WITH ORDINALITY x(id, impact, o)
	           WHERE bp.subblocks IS NOT NULL GROUP BY bp.term, bp.block, 3)
	         SELECT count(*) FROM d FULL JOIN r USING (term, block, sub)
	         WHERE d.start IS DISTINCT FROM r.start OR d.count IS DISTINCT FROM r.count
	           OR NOT (d.bound >= r.m AND d.bound <= r.m + r.scale / 255 * 1.000001)")" 0 \
		"$1: every directory's sub-blocks, first postings, counts and bounds equal a recount of the postings ($(Q "SELECT count(*) FROM code.bm25_postings bp, code.bm25_params p, codevec_bm25_subblocks_unpack(bp.subblocks, bp.postings, p.block_shift) u WHERE bp.subblocks IS NOT NULL") sub-blocks)"
	is "$(Q "SELECT abs(total_length - (SELECT sum(codevec_bm25_length(s.tsv, p.weights)) FROM code.snippets s))
	         <= 1e-9 * total_length FROM code.bm25_params p")" t \
		"$1: total_length is the sum of the lengths"
}

# pruned top-k against Python's full scoring
exact_check() {		# exact_check LABEL
	Q "COPY (SELECT id, tsv::text FROM code.snippets WHERE tsv IS NOT NULL) TO STDOUT WITH (FORMAT csv)" > "$TMP/docs.csv"
	Q "COPY (SELECT k1, b, weights, avgdl, n FROM code.bm25_params) TO STDOUT WITH (FORMAT csv)" > "$TMP/params.csv"
	Q "COPY (SELECT qid, array_to_string(tsvector_to_array(to_tsvector('codevec_code', q)), ' ')
	         FROM public.test_questions) TO STDOUT WITH (FORMAT csv)" > "$TMP/queries.csv"
	Q "COPY (SELECT k.k, q.qid, b.rank, b.id, b.score FROM public.test_questions q
	         CROSS JOIN (VALUES (1), (10), (100)) k(k)
	         CROSS JOIN LATERAL code.bm25_search(q.q, k.k) WITH ORDINALITY b(id, score, rank))
	         TO STDOUT WITH (FORMAT csv)" > "$TMP/got.csv"
	python3 "$HERE/bm25check.py" "$TMP/docs.csv" "$TMP/params.csv" "$TMP/queries.csv" "$TMP/got.csv" > "$TMP/check.out" 2>&1
	ok $? "$1: pruned top-k of $NQ questions (k 1, 10, 100) equals Python's full BM25 scoring, ids and scores ($(tail -1 "$TMP/check.out"))"
	grep '^#' "$TMP/check.out" | head -3
}

stats_check "after the build"
exact_check "after the build"
is "$(Q "SELECT reloptions FROM pg_class WHERE oid = 'code.bm25_postings'::regclass")" "{toast_tuple_target=8160}" \
	"code.bm25_postings keeps rows of up to a page in the table (toast_tuple_target 8160)"

# ------------------------------------------------------------ one-pass and parallel refresh
# code.bm25_refresh() builds the blocks in one pass over the snippets in id
# order (codevec_bm25_build) and reads their lengths with
# max_parallel_maintenance_workers workers (2 by default).  Without
# codevec_bm25_build (hidden here by a rename) it builds the blocks in SQL:
# with 0 workers the serial build (every posting sorted, codevec_bm25_pack
# of the groups), else the parallel one (codevec_bm25_block_agg).  All give
# the same rows: terms, df, every block's bytes and max_impact.  In 1024-id
# blocks, so that the corpus spans enough of them for 3 ranges (the
# refreshes below build at that size; the default is set back after them).
Q "UPDATE code.bm25_params SET block_shift = 10" >/dev/null
snapshot() {		# snapshot WORKERS TABLE_SUFFIX -> plans of the refresh's statements in $TMP/refresh.TABLE_SUFFIX
	psql -X -q -d "$DB" -v ON_ERROR_STOP=1 -c "SET max_parallel_maintenance_workers = $1" -c "LOAD 'auto_explain'" \
		-c "SET auto_explain.log_min_duration = 0" -c "SET auto_explain.log_nested_statements = on" \
		-c "SET auto_explain.log_analyze = on" -c "SET auto_explain.log_level = warning" \
		-c "SELECT code.bm25_refresh()" > "$TMP/refresh.$2" 2>&1
	Q "DROP TABLE IF EXISTS public.terms_$2, public.postings_$2;
	   CREATE TABLE public.terms_$2 AS SELECT * FROM code.bm25_terms;
	   CREATE TABLE public.postings_$2 AS SELECT * FROM code.bm25_postings" >/dev/null
}
same_tables() {		# same_tables A B -> rows of either not in the other (terms, postings)
	Q "SELECT (SELECT count(*) FROM ((TABLE public.terms_$1 EXCEPT ALL TABLE public.terms_$2)
	           UNION ALL (TABLE public.terms_$2 EXCEPT ALL TABLE public.terms_$1)) x) || ' ' ||
	          (SELECT count(*) FROM ((TABLE public.postings_$1 EXCEPT ALL TABLE public.postings_$2)
	           UNION ALL (TABLE public.postings_$2 EXCEPT ALL TABLE public.postings_$1)) x)"
}
BUILD="codevec_bm25_build(text, real[], real, real, double precision, integer)"
snapshot 2 onepass
SEQ=$(Q "SELECT s.last_value = (SELECT max(term) + 1 FROM code.bm25_terms) AND NOT s.is_called FROM code.bm25_terms_term_seq s")
Q "ALTER FUNCTION $BUILD RENAME TO codevec_bm25_build_hidden" >/dev/null
snapshot 0 serial
snapshot 2 par2
snapshot 1 par1
Q "ALTER FUNCTION codevec_bm25_build_hidden(text, real[], real, real, double precision, integer) RENAME TO codevec_bm25_build" >/dev/null
NB=$(Q "SELECT count(*) || ' blocks, ' || (SELECT count(*) FROM public.terms_serial) || ' terms' FROM public.postings_serial")
grep -q "Function Scan on codevec_bm25_build" "$TMP/refresh.onepass"
ok $? "the refresh reads the postings with codevec_bm25_build (one pass)"
sed -n '/Query Text: CREATE TEMP TABLE bm25_refresh_len/,/Query Text:.*bm25_refresh_blocks/p' "$TMP/refresh.onepass" | grep -q "Workers Launched: 2"
ok $? "... and the lengths with 2 workers"
sed -n '/Query Text: CREATE TEMP TABLE bm25_refresh_blocks/,/Query Text: INSERT INTO code.bm25_terms/p' "$TMP/refresh.onepass" > "$TMP/onepass.blocks"
grep -q "Parallel Append" "$TMP/onepass.blocks" && grep -q "Gather Merge" "$TMP/onepass.blocks" && grep -q "Workers Launched: 2" "$TMP/onepass.blocks" &&
	[ "$(grep -c "Function Scan on codevec_bm25_build" "$TMP/onepass.blocks")" = 3 ]
ok $? "... and the blocks in 3 ranges of ids (Parallel Append), sorted in 2 workers and the leader (Gather Merge)"
is "$(same_tables serial onepass)" "0 0" "the one-pass refresh gives the serial SQL refresh's terms and blocks, byte for byte ($NB)"
is "$SEQ" t \
	"... and leaves the terms' sequence at the next number (later lexemes number on)"
is "$(Q "SELECT count(*) FROM pg_constraint WHERE conrelid = 'code.bm25_terms'::regclass AND contype IN ('p', 'u')")" 2 \
	"... and the vocabulary's primary key and unique lexeme, rebuilt after it"
ok $(grep -q "Workers Launched" "$TMP/refresh.serial"; [ $? -ne 0 ]; echo $?) "SQL build, max_parallel_maintenance_workers 0: the refresh launches no worker"
ok $([ "$(grep -c "Workers Launched: 2" "$TMP/refresh.par2")" -ge 3 ]; echo $?) \
	"SQL build, max_parallel_maintenance_workers 2: lengths, df and blocks are computed by 2 workers ($(grep -c "Workers Launched: 2" "$TMP/refresh.par2") statements)"
sed -n '/Query Text: CREATE TEMP TABLE bm25_refresh_blocks/,/Query Text: INSERT/p' "$TMP/refresh.par2" | grep -q "Workers Launched: 2"
ok $? "... the blocks among them (the impacts, their terms and the sort in the workers)"
ok $([ "$(grep -c "Workers Launched: 1" "$TMP/refresh.par1")" -ge 3 ]; echo $?) "SQL build, max_parallel_maintenance_workers 1: 1 worker"
is "$(same_tables serial par2)" "0 0" "the parallel SQL refresh (2 workers) gives the serial refresh's terms and blocks, byte for byte"
is "$(same_tables serial par1)" "0 0" "... and so does 1 worker"
# codevec_bm25_build on its own: by hand, and its errors
is "$(Q "SELECT lexeme || ' ' || block || ' ' || df || ' ' || max_impact || ' ' || encode(postings, 'hex')
	 FROM codevec_bm25_build('SELECT id, tsv FROM (VALUES (1025::bigint, ''a:1 b:2''::tsvector), (1030, ''a:1,2''), (1031, NULL),
	   (2048, ''b:1'')) v(id, tsv) ORDER BY id', '{1,1,1,1}', 1, 0, 1, 10) ORDER BY 1")" \
	"$(Q "SELECT 'a 1 2 ' || max(i.impact) || ' ' || encode(codevec_bm25_pack(array_agg(v.id ORDER BY v.id), array_agg(i.impact ORDER BY v.id), 10), 'hex')
	 FROM (VALUES (1025::bigint, 'a:1 b:2'::tsvector), (1030, 'a:1,2')) v(id, tsv),
	 codevec_bm25_impacts(v.tsv, '{1,1,1,1}', 1, 0, 1) i WHERE i.lexeme = 'a'
	 UNION ALL SELECT 'b 1 1 ' || i.impact || ' ' || encode(codevec_bm25_pack('{1025}', ARRAY[i.impact], 10), 'hex')
	 FROM codevec_bm25_impacts('a:1 b:2', '{1,1,1,1}', 1, 0, 1) i WHERE i.lexeme = 'b'
	 UNION ALL SELECT 'b 2 1 ' || i.impact || ' ' || encode(codevec_bm25_pack('{2048}', ARRAY[i.impact], 10), 'hex')
	 FROM codevec_bm25_impacts('b:1', '{1,1,1,1}', 1, 0, 1) i ORDER BY 1")" \
	"codevec_bm25_build of 4 rows by hand: a row per lexeme and block, as codevec_bm25_pack of codevec_bm25_impacts (a NULL tsv skipped)"
is "$(Q "SELECT count(*) FROM codevec_bm25_build('SELECT 1::bigint, NULL::tsvector WHERE false', '{1,1,1,1}', 1, 0, 1, 10)")" 0 \
	"codevec_bm25_build of no rows: no rows"
# its errors: source query | the other arguments | SQLSTATE | what
while IFS='|' read -r src args want what; do
	is "$(STATE "SELECT * FROM codevec_bm25_build('$src', $args)")" "$want" "codevec_bm25_build: $what: $want"
done <<'CASES'
SELECT id, ''a''::tsvector FROM (VALUES (2::bigint), (1)) v(id)|'{1,1,1,1}', 1, 0, 1, 10|22023|ids not increasing
SELECT -1::bigint, ''a''::tsvector|'{1,1,1,1}', 1, 0, 1, 10|22023|a negative id
SELECT NULL::bigint, ''a''::tsvector|'{1,1,1,1}', 1, 0, 1, 10|22004|a NULL id
SELECT 1::integer, ''a''::tsvector|'{1,1,1,1}', 1, 0, 1, 10|42804|an integer id column
SELECT 1::bigint, ''a''::tsvector|'{1,1,1,1}', 1, 0, 1, 17|22023|block_shift 17
SELECT 1::bigint, ''a''::tsvector|'{1,1,1,1}', 1, 0, 0, 10|22023|avgdl 0
CASES
is "$(Q "SHOW max_parallel_workers_per_gather")" 2 "the refresh's settings end with it (max_parallel_workers_per_gather as it was)"
# the aggregate on its own: postings in any order pack as codevec_bm25_pack does in id order
is "$(Q "SELECT count(*) FROM (SELECT bp.term, bp.block, bp.postings, codevec_bm25_block_agg(x.id, x.impact, p.block_shift ORDER BY random()) AS again
	  FROM code.bm25_postings bp, code.bm25_params p, codevec_bm25_unpack(bp.postings, bp.block, p.block_shift) x
	  WHERE bp.term % 7 = 0 GROUP BY 1, 2, 3) g WHERE g.again IS DISTINCT FROM g.postings")" 0 \
	"codevec_bm25_block_agg of a block's postings in random order = the block"
# ... and in parallel workers, each aggregating part of every group: the
# partial states are serialised, passed to the leader and combined
Q "CREATE TABLE public.unpacked AS SELECT bp.term, bp.block, x.id, x.impact FROM code.bm25_postings bp, code.bm25_params p,
     codevec_bm25_unpack(bp.postings, bp.block, p.block_shift) x ORDER BY random(); ANALYZE public.unpacked" >/dev/null
PAR="SET max_parallel_workers_per_gather = 2; SET parallel_setup_cost = 0; SET min_parallel_table_scan_size = 0;"
AGG="SELECT u.term, u.block, codevec_bm25_block_agg(u.id, u.impact, $(Q "SELECT block_shift FROM code.bm25_params")) AS again
     FROM public.unpacked u GROUP BY 1, 2"
psql -X -A -t -q -d "$DB" -c "$PAR" -c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) $AGG" > "$TMP/aggplan" 2>&1
grep -q "Partial .*Aggregate" "$TMP/aggplan" && grep -q "Workers Launched: 2" "$TMP/aggplan"
ok $? "codevec_bm25_block_agg runs as a partial aggregate in 2 workers"
is "$(psql -X -A -t -q -d "$DB" -c "$PAR" -c "SELECT count(*) FILTER (WHERE g.again IS DISTINCT FROM bp.postings) || ' of ' || count(*)
	FROM ($AGG) g FULL JOIN code.bm25_postings bp USING (term, block)")" "0 of $(Q "SELECT count(*) FROM code.bm25_postings")" \
	"... and combines their states into every block, byte for byte (postings in random order)"
is "$(Q "SELECT encode(codevec_bm25_block_agg(id, imp, 10), 'hex') FROM (VALUES (1030, 0.5::real), (1025, 2::real)) v(id, imp)")" \
	"01000600000000400000003f" "codevec_bm25_block_agg by hand: the bytes of pack('{1025,1030}', '{2,0.5}')"
is "$(Q "SELECT codevec_bm25_block_agg(1, 1, 10) IS NULL FROM code.bm25_params WHERE false")" t "codevec_bm25_block_agg of no rows: NULL"
is "$(STATE "SELECT codevec_bm25_block_agg(id, 1, 10) FROM (VALUES (1), (1025)) v(id)")" 22023 "block_agg: ids in two blocks: 22023"
is "$(STATE "SELECT codevec_bm25_block_agg(id, 1, 10) FROM (VALUES (3), (5), (3)) v(id)")" 22023 "block_agg: an id twice: 22023"
is "$(STATE "SELECT codevec_bm25_block_agg(1, 'NaN', 10)")" 22023 "block_agg: a NaN impact: 22023"
is "$(STATE "SELECT codevec_bm25_block_agg(1, 1, 17)")" 22023 "block_agg: block_shift 17: 22023"
is "$(STATE "SELECT codevec_bm25_block_agg(NULL, 1, 10)")" 22004 "block_agg: a NULL id: 22004"
is "$(Q "SELECT count(*) FROM code.bm25_postings bp, code.bm25_params p
         WHERE bp.max_impact <> codevec_bm25_block_max(bp.postings, p.block_shift)")" 0 \
	"a build stores every block's exact max_impact"

is "$(Q "BEGIN; UPDATE code.bm25_params SET block_shift = 14; SELECT code.bm25_refresh(); COMMIT;" | tail -1)" t \
	"block_shift 14 again (the default) and a refresh"

# the sub-block directories: the top-k is the same without them (the
# sub-blocks' bounds then come from the decoded postings), and a directory
# that does not describe its postings is an error, not a wrong answer
Q "CREATE TABLE public.with_dirs AS SELECT q.qid, k.k, b.id, b.score FROM public.test_questions q
     CROSS JOIN (VALUES (1), (10), (100)) k(k) CROSS JOIN LATERAL code.bm25_search(q.q, k.k) b" >/dev/null
Q "UPDATE code.bm25_postings SET subblocks = NULL" >/dev/null
is "$(Q "SELECT count(*) FROM ((TABLE public.with_dirs EXCEPT ALL SELECT q.qid, k.k, b.id, b.score FROM public.test_questions q
     CROSS JOIN (VALUES (1), (10), (100)) k(k) CROSS JOIN LATERAL code.bm25_search(q.q, k.k) b)
     UNION ALL (SELECT q.qid, k.k, b.id, b.score FROM public.test_questions q
     CROSS JOIN (VALUES (1), (10), (100)) k(k) CROSS JOIN LATERAL code.bm25_search(q.q, k.k) b EXCEPT ALL TABLE public.with_dirs)) x")" 0 \
	"without the sub-block directories the top-k of all $NQ questions (k 1, 10, 100) is the same, ids and scores"
Q "UPDATE code.bm25_postings bp SET subblocks = codevec_bm25_subblocks(bp.postings, p.block_shift) FROM code.bm25_params p" >/dev/null
# a database built before the directories: the loader's schema adds the
# column and fills it
Q "ALTER TABLE code.bm25_postings DROP COLUMN subblocks" >/dev/null
mkdir -p "$TMP/empty"
"$LOADER" -q --no-embed --no-bm25 --repo empty "$TMP/empty"
is "$(Q "SELECT count(*) FILTER (WHERE bp.subblocks IS DISTINCT FROM codevec_bm25_subblocks(bp.postings, p.block_shift))
	 || ' ' || (count(bp.subblocks) > 0) FROM code.bm25_postings bp, code.bm25_params p")" "0 true" \
	"postings built without directories get theirs from the loader's schema (the column added and filled)"
BIG="SELECT term, block FROM code.bm25_postings WHERE subblocks IS NOT NULL ORDER BY length(postings) DESC, term LIMIT 1"
BIGTERM=$(Q "SELECT term FROM ($BIG) x")
Q "CREATE TABLE public.saved_dir AS SELECT bp.* FROM code.bm25_postings bp JOIN ($BIG) x USING (term, block)" >/dev/null
# a directory: its postings | what
while IFS='|' read -r dir what; do
	Q "UPDATE code.bm25_postings bp SET subblocks = $dir FROM public.saved_dir s WHERE bp.term = s.term AND bp.block = s.block" >/dev/null
	is "$(STATE "SELECT * FROM codevec_bm25_blocks_topk(ARRAY[$BIGTERM], '{1}', 10, 'code.bm25_postings_idx', (SELECT block_shift FROM code.bm25_params))")" XX001 \
		"block top-k over a directory that $what: XX001"
done <<'CASES'
substring(s.subblocks FROM 1 FOR length(s.subblocks) - 4)|misses its last sub-block
substring(s.subblocks FROM 1 FOR length(s.subblocks) - 1)|is cut inside an entry
(SELECT b.subblocks FROM code.bm25_postings b WHERE b.subblocks IS NOT NULL AND length(b.postings) <> length(s.postings) LIMIT 1)|describes another block
overlay(s.subblocks PLACING '\x00000000'::bytea FROM 1)|counts no postings
CASES
Q "UPDATE code.bm25_postings bp SET subblocks = s.subblocks FROM public.saved_dir s WHERE bp.term = s.term AND bp.block = s.block" >/dev/null
is "$(STATE "SELECT u.* FROM public.saved_dir s, codevec_bm25_subblocks_unpack(substring(s.subblocks FROM 1 FOR 8), s.postings, 14) u")" XX001 \
	"codevec_bm25_subblocks_unpack of a directory cut in its header: XX001"
is "$(Q "SELECT codevec_bm25_subblocks(codevec_bm25_pack('{1,2,3}', '{1,2,3}', 14), 14) IS NULL
	 AND codevec_bm25_subblocks(codevec_bm25_pack(ARRAY(SELECT generate_series(0, 19)::bigint), array_fill(1::real, ARRAY[20]), 6), 6) IS NULL
	 AND codevec_bm25_subblocks(codevec_bm25_pack(ARRAY(SELECT generate_series(0, 15)::bigint), array_fill(1::real, ARRAY[16]), 7), 7) IS NOT NULL")" t \
	"no directory for a block of fewer than 16 postings, nor for blocks of 64 ids"
is "$(STATE "SELECT codevec_bm25_subblocks('\\x0000'::bytea, 14)")" XX001 "codevec_bm25_subblocks of bytes that are not a block: XX001"
is "$(STATE "SELECT codevec_bm25_subblocks(''::bytea, 17)")" 22023 "codevec_bm25_subblocks: block_shift 17: 22023"

# 1024-id blocks: 16 sub-blocks each
is "$(Q "BEGIN; UPDATE code.bm25_params SET block_shift = 10; SELECT code.bm25_refresh(); COMMIT;" | tail -1)" t \
	"block_shift 10 (1024 ids a block) and a refresh"
stats_check "1024-id blocks"
exact_check "1024-id blocks"

# small blocks: many of them, so that the pruning has blocks to skip
is "$(Q "BEGIN; UPDATE code.bm25_params SET block_shift = 5; SELECT code.bm25_refresh(); COMMIT;" | tail -1)" t \
	"block_shift 5 (32 ids a block) and a refresh"
stats_check "32-id blocks"
exact_check "32-id blocks"
is "$(Q "SELECT avgdl = total_length / n FROM code.bm25_params")" t "the build stores avgdl = total_length / n"

# the top-k prunes: it reads fewer postings than the lists hold
msg=$(psql -X -q -d "$DB" -c "SET client_min_messages = debug1" -c "SELECT count(*) FROM code.bm25_search('return the message headers as a list', 10)" 2>&1 | grep 'postings read')
read_n=$(echo "$msg" | sed -n 's/.* \([0-9]*\) postings read.*/\1/p')
total=$(Q "SELECT sum(t.df) FROM code.bm25_query('return the message headers as a list') q, unnest(q.terms) u JOIN code.bm25_terms t ON t.term = u")
ok $([ -n "$read_n" ] && [ "$read_n" -lt "$total" ]; echo $?) "the top-10 stops early: $read_n of $total postings read ($(echo "$msg" | sed -n 's/.*terms: \([0-9]* blocks, [0-9]* visited\).*/\1/p'))"

# Fagin's combined algorithm (codevec_bm25_topk) over impact-ordered lists
# made from the blocks gives the same lists, ids and scores to the bit
Q "CREATE TABLE public.impact_postings AS SELECT bp.term, x.impact, x.id FROM code.bm25_postings bp, code.bm25_params p,
     codevec_bm25_unpack(bp.postings, bp.block, p.block_shift) x;
   CREATE INDEX impact_postings_idx ON public.impact_postings (term, impact DESC, id)" >/dev/null
Q "VACUUM public.impact_postings" >/dev/null
is "$(Q "SELECT count(*) FROM public.test_questions q, code.bm25_params p, code.bm25_query(q.q) t,
	       (VALUES (1), (10), (100)) k(k)
	       WHERE t.terms IS NOT NULL AND ARRAY(SELECT row(x.id, x.score)::text FROM codevec_bm25_topk(t.terms, t.lexemes, t.idf, k.k,
	         p.weights, p.k1, p.b, p.avgdl, 'public.impact_postings_idx', 'code.snippets_pkey', 'tsv') x)
	       IS DISTINCT FROM ARRAY(SELECT row(b.id, b.score)::text FROM code.bm25_search(q.q, k.k) b)")" 0 \
	"codevec_bm25_topk over impact-ordered lists = code.bm25_search's block-max top-k on all $NQ questions (k 1, 10, 100)"

# code.search keyword mode on BM25, against the unpruned SQL scoring
is "$(Q "SELECT string_agg(id::text, ',' ORDER BY keyword_rank) FROM code.search('parse email headers', k => 10, mode => 'keyword')")" \
	"$(Q "SELECT string_agg(id::text, ',') FROM code.bm25_search_full('parse email headers', 10)")" \
	"code.search keyword mode = BM25 (code.bm25_search_full, every match summed in SQL)"
is "$(Q "SELECT string_agg(s.id::text, ',' ORDER BY s.keyword_rank) FROM code.search('read a configuration file', k => 5,
	       mode => 'keyword', path_like => 'logging/%') s")" \
	"$(Q "SELECT string_agg(b.id::text, ',' ORDER BY b.score DESC, b.id) FROM (SELECT b.* FROM code.bm25_search_full('read a configuration file', 100000) b
	      JOIN code.snippets s ON s.id = b.id JOIN code.files f ON f.id = s.file_id WHERE f.path LIKE 'logging/%'
	      ORDER BY b.score DESC, b.id LIMIT 5) b")" \
	"code.search keyword mode with path_like: the first 5 of the full order that pass"
is "$(Q "SELECT string_agg(s.id::text, ',' ORDER BY s.keyword_rank) FROM code.search('send data over a socket', k => 5,
	       mode => 'keyword', exclude_tests => true, lang => 'python') s")" \
	"$(Q "SELECT string_agg(b.id::text, ',' ORDER BY b.score DESC, b.id) FROM (SELECT b.* FROM code.bm25_search_full('send data over a socket', 100000) b
	      JOIN code.snippets s ON s.id = b.id JOIN code.files f ON f.id = s.file_id
	      WHERE f.language = 'python' AND NOT code.is_test(f.path, s.qualified_name, s.code)
	      ORDER BY b.score DESC, b.id LIMIT 5) b")" \
	"code.search keyword mode with lang and exclude_tests"
is "$(Q "SELECT count(*) FROM code.search('zzzqqq', mode => 'keyword')")" 0 "a question with no known lexeme finds nothing"

# ------------------------------------------------------------ under change
# in 1024-id blocks: the writes edit blocks with sub-block directories and
# blocks without, make new ones and empty others
is "$(Q "BEGIN; UPDATE code.bm25_params SET block_shift = 10; SELECT code.bm25_refresh(); COMMIT;" | tail -1)" t \
	"block_shift 10 for the writes below, and a refresh"
AVG0=$(Q "SELECT avgdl FROM code.bm25_params")
C2=$TMP/more
mkdir -p "$C2"
cp -r "$PYLIB/unittest" "$C2/" && rm -rf "$C2/unittest/__pycache__" "$C2/unittest/test"
# a database of the loader of 2026-12-05 morning: code.bm25_query_terms
# without lexemes (a result type CREATE OR REPLACE cannot change)
Q "DROP FUNCTION code.bm25_query_terms(text);
   CREATE FUNCTION code.bm25_query_terms(query text) RETURNS TABLE(terms integer[], idf double precision[])
   LANGUAGE sql STABLE AS 'SELECT NULL::integer[], NULL::double precision[]'" >/dev/null
"$LOADER" -q --no-embed --no-bm25 --repo more "$C2"
is $? 0 "inserts: a second repository loads"
is "$(Q "SELECT pg_get_function_result('code.bm25_query_terms(text)'::regprocedure)")" \
	"TABLE(terms integer[], lexemes text[], idf double precision[])" \
	"... and replaces an older code.bm25_query_terms (no lexemes) with today's"
rm -rf "$C/json"
printf '\ndef zebra_quux_counter(items):\n    """Count zebra quux items."""\n    return len(items)\n' >> "$C/logging/handlers.py"
"$LOADER" -q --no-embed --no-bm25 --repo stdlib "$C"
is $? 0 "deletes and updates: the first repository reloads without json/ and with a changed file"
is "$(Q "SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id WHERE f.path LIKE 'json/%'")" 0 \
	"json/ is gone"
# every writer of postings raises code.bm25_params.generation (the key of
# the GPU service's copy of them: codevec_bm25_gpu_topk)
GEN0=$(Q "SELECT generation FROM code.bm25_params")
Q "UPDATE code.snippets SET tsv = tsv || to_tsvector('codevec_code', 'zebra quux') WHERE id % 37 = 0" >/dev/null
GEN1=$(Q "SELECT generation FROM code.bm25_params")
Q "UPDATE code.snippets SET kind = kind WHERE id % 5 = 0" >/dev/null
Q "UPDATE code.snippets SET tsv = NULL WHERE id % 101 = 0" >/dev/null
GEN2=$(Q "SELECT generation FROM code.bm25_params")
ok $([ "${GEN1:-0}" -gt "${GEN0:-0}" ] && [ "${GEN2:-0}" -gt "$GEN1" ]; echo $?) \
	"an UPDATE of tsv raises code.bm25_params.generation ($GEN0 -> $GEN1 -> $GEN2)"
is "$(psql -X -A -t -q -d "$DB" -c "BEGIN" -c "DELETE FROM code.snippets WHERE id IN (SELECT id FROM code.snippets WHERE tsv IS NOT NULL ORDER BY id LIMIT 3)" \
	-c "SELECT generation > $GEN2 FROM code.bm25_params" -c "ROLLBACK")" t \
	"... a DELETE raises it in its transaction"
is "$(Q "SELECT generation = $GEN2 FROM code.bm25_params")" t "... and a ROLLBACK takes it back"
is "$(Q "SELECT avgdl FROM code.bm25_params")" "$AVG0" "avgdl stays as stored until a refresh"
stats_check "after inserts, deletes and updates"
exact_check "after inserts, deletes and updates"

# four writers at once: they serialise on code.bm25_params, nothing deadlocks
for i in 1 2 3 4; do
	psql -X -q -d "$DB" -v ON_ERROR_STOP=1 -c "BEGIN" \
		-c "INSERT INTO code.snippets (file_id, kind, symbol, qualified_name, signature, doc, start_line, end_line,
		    code, embed_text, tsv) SELECT file_id, kind, symbol, qualified_name || '_w$i', signature, doc, start_line,
		    end_line, code, embed_text, tsv || to_tsvector('codevec_code', 'writer$i')
		    FROM code.snippets WHERE id % 40 = $i" \
		-c "DO \$\$ BEGIN PERFORM pg_sleep(0.2); END \$\$" -c "DELETE FROM code.snippets WHERE id % 53 = $i" -c "COMMIT" \
		> "$TMP/writer$i.out" 2>&1 &
done
wait
is "$(cat "$TMP"/writer*.out)" "" "four concurrent writers (insert, delete) commit without errors or notices"
stats_check "after four concurrent writers"

is "$(Q "SELECT code.bm25_refresh(0.5)")" f "code.bm25_refresh(0.5) leaves postings whose avgdl is within 50%"
is "$(Q "SELECT code.bm25_refresh()")" t "code.bm25_refresh() rebuilds"
is "$(Q "SELECT avgdl = total_length / n AND avgdl <> $AVG0 FROM code.bm25_params")" t "and stores the new avgdl"
stats_check "after a refresh"
exact_check "after a refresh"

# ------------------------------------------------------------ hybrid on BM25
# stand-in embeddings (deterministic, no encoder run over the corpus); the
# question is embedded by embed() as code.search does
Q "UPDATE code.snippets SET emb = (SELECT array_agg(sin(id * 0.37 + i * 1.3)::real) FROM generate_series(1, 384) i)::codevec" >/dev/null
for q in 'parse email headers' 'read a configuration file'; do
	is "$(Q "SELECT string_agg(id::text, ',' ORDER BY score DESC, id) FROM code.search('$q', k => 10)")" \
		"$(Q "WITH v AS (SELECT id, row_number() OVER (ORDER BY d, id) AS r FROM
		        (SELECT id, emb <=> embed('$q') AS d FROM code.snippets ORDER BY d, id LIMIT 100) x),
		      kw AS (SELECT id, row_number() OVER (ORDER BY score DESC, id) AS r FROM code.bm25_search('$q', 100)),
		      m AS (SELECT coalesce(v.id, kw.id) AS id, coalesce(1.0::float8 / (2 + v.r), 0) + coalesce(0.5::float8 / (2 + kw.r), 0) AS s
		            FROM v FULL JOIN kw ON kw.id = v.id)
		      SELECT string_agg(id::text, ',' ORDER BY s DESC, id) FROM (SELECT * FROM m ORDER BY s DESC, id LIMIT 10) t")" \
		"hybrid '$q': weighted RRF of the sequential-scan vector list and the BM25 list (checked against Python above)"
done
# one plan: code.search is inlined into the caller's statement, so EXPLAIN
# (ANALYZE, BUFFERS) of it shows the gpuivf index scan of the vector list and
# the keyword top-k with the buffers it read, each run once
Q "CREATE INDEX snippets_emb_gpuivf ON code.snippets USING gpuivf (emb codevec_cosine_ops)" >/dev/null
psql -X -A -t -q -d "$DB" -c "SET codevec.device = cpu" -c "SET enable_seqscan = off" -c "SET enable_sort = off" \
	-c "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT * FROM code.search('parse email headers', k => 10)" > "$TMP/plan" 2>&1
# (PostgreSQL 18 prints rows with two decimals: rows=100.00)
grep -qE "Index Scan using snippets_emb_gpuivf on snippets s2 \(actual time=[0-9.]* rows=101(\.00)? loops=1\)" "$TMP/plan"
ok $? "EXPLAIN ANALYZE of code.search: the vector list is one gpuivf index scan (100 rows and the 101st that shows no tie with the 100th: WITH TIES; loops=1)"
grep -A1 -E "Function Scan on codevec_bm25_gpu_topk x \(actual time=[0-9.]* rows=100(\.00)? loops=1\)" "$TMP/plan" | grep -q "Buffers: shared hit="
ok $? "... and the keyword list one BM25 top-k (code.bm25_topk inlined: codevec_bm25_gpu_topk, 100 rows, loops=1) with the buffers it read"
is "$(grep -c "Function Scan on search\|Function Scan on bm25_\|Function Scan on codevec_bm25_gpu_topk\|Index Scan using snippets_emb_gpuivf" "$TMP/plan")" 2 \
	"... in the caller's plan (code.search and code.bm25_topk inlined), each list once"
# without filters the vector list reads no code.files row (its LEFT JOIN
# removed): the only files scan is the final lookup's of the k rows; with a
# filter it joins them
is "$(grep -c "on files f2" "$TMP/plan")" 0 "... the vector list without filters probes no code.files row (the join removed)"
psql -X -A -t -q -d "$DB" -c "SET codevec.device = cpu" -c "SET enable_seqscan = off" \
	-c "EXPLAIN (COSTS OFF) SELECT * FROM code.search('parse email headers', k => 10, lang => 'python')" > "$TMP/plan.lang" 2>&1
grep -q "on files f2" "$TMP/plan.lang"
ok $? "... and with lang it joins code.files for the filter"
# the keyword list runs before the vector list's scan (hybrid posts the
# GPU request first: code.gpu_prefetch), whatever join order was chosen
kwline=$(grep -n "Function Scan on codevec_bm25_gpu_topk" "$TMP/plan" | head -1 | cut -d: -f1)
vline=$(grep -n "Index Scan using snippets_emb_gpuivf" "$TMP/plan" | head -1 | cut -d: -f1)
# (PostgreSQL 17+ names the InitPlan's value "(InitPlan N).col1")
grep -qE 'One-Time Filter: \((\$[0-9]+|\(InitPlan [0-9]+\)\.col1) >= 0\)' "$TMP/plan"
ok $? "... the vector list gated on the keyword list (One-Time Filter on its count), so the keyword list is computed first (lines $kwline, $vline)"
is "$(psql -X -A -t -q -d "$DB" -c "SET codevec.device = cpu" -c "SET enable_seqscan = off" -c "SET enable_sort = off" \
	-c "SELECT string_agg(id::text || ':' || score, ',' ORDER BY score DESC, id) FROM code.search('parse email headers', k => 10)")" \
	"$(Q "SELECT string_agg(id::text || ':' || score, ',' ORDER BY score DESC, id) FROM code.search('parse email headers', k => 10)")" \
	"... and that plan gives the same rows and scores as the sequential one"
Q "DROP INDEX code.snippets_emb_gpuivf" >/dev/null
# k 200 = both lists of depth 100 whole, so every row of the keyword list is
# in the answer (at k 10 the stand-in vectors' top ten met the BM25 list by
# chance, 0 or 1 rows, and count(*) > 0 failed for some question embeddings)
is "$(Q "SELECT bool_and(s.keyword_score = b.score::real) AND count(*) = 100 FROM code.search('parse email headers', k => 200, depth => 100) s
	JOIN code.bm25_search('parse email headers', 100) b ON b.id = s.id")" t \
	"hybrid keyword_score is the BM25 score of every row of the keyword list (its 100 rows)"

# ------------------------------------------------------------ errors
TOPK="'public.impact_postings_idx', 'code.snippets_pkey'"
is "$(STATE "SELECT * FROM codevec_bm25_topk('{1,2}', '{a}', '{1}', 10, '{0.1,0.2,0.4,1}', 1.2, 0.75, 10, $TOPK, 'tsv')")" 22023 \
	"top-k: arrays of different lengths: 22023"
is "$(STATE "SELECT * FROM codevec_bm25_topk('{1}', '{a}', '{1}', 0, '{0.1,0.2,0.4,1}', 1.2, 0.75, 10, $TOPK, 'tsv')")" 22023 "top-k: k 0: 22023"
is "$(STATE "SELECT * FROM codevec_bm25_topk('{1}', '{a}', '{NaN}', 10, '{0.1,0.2,0.4,1}', 1.2, 0.75, 10, $TOPK, 'tsv')")" 22023 \
	"top-k: a NaN idf: 22023"
is "$(STATE "SELECT * FROM codevec_bm25_topk('{1}', '{a}', '{1}', 10, '{0.1,0.2,0.4,1}', 1.2, 0.75, 10,
	'code.snippets_pkey', 'code.snippets_pkey', 'tsv')")" 22023 "top-k: a postings index of the wrong shape: 22023"
is "$(STATE "SELECT * FROM codevec_bm25_topk('{1}', '{a}', '{1}', 10, '{0.1,0.2,0.4,1}', 1.2, 0.75, 10, $TOPK, 'code')")" 22023 \
	"top-k: a column that is not a tsvector: 22023"
BT="'code.bm25_postings_idx'"
is "$(STATE "SELECT * FROM codevec_bm25_blocks_topk('{1,2}', '{1}', 10, $BT, 10)")" 22023 "block top-k: arrays of different lengths: 22023"
is "$(STATE "SELECT * FROM codevec_bm25_blocks_topk('{1}', '{1}', 0, $BT, 10)")" 22023 "block top-k: k 0: 22023"
is "$(STATE "SELECT * FROM codevec_bm25_blocks_topk('{1}', '{-1}', 10, $BT, 10)")" 22023 "block top-k: a negative idf: 22023"
is "$(STATE "SELECT * FROM codevec_bm25_blocks_topk('{1,1}', '{1,1}', 10, $BT, 10)")" 22023 "block top-k: a term twice: 22023"
is "$(STATE "SELECT * FROM codevec_bm25_blocks_topk('{1}', '{1}', 10, $BT, 17)")" 22023 "block top-k: block_shift 17: 22023"
is "$(STATE "SELECT * FROM codevec_bm25_blocks_topk('{1}', '{1}', 10, 'code.snippets_pkey', 10)")" 22023 \
	"block top-k: an index of the wrong shape: 22023"
is "$(STATE "SELECT * FROM codevec_bm25_blocks_topk('{1}', '{1}', 10, 'public.impact_postings_idx', 10)")" 22023 \
	"block top-k: a table without max_impact and postings: 22023"
# a block with a wrong max_impact is refused, not ranked wrong
is "$(STATE "BEGIN; UPDATE code.bm25_postings SET max_impact = 0; SELECT * FROM code.bm25_search('parse email headers', 10)")" XX001 "block top-k: an impact above its block's max_impact: XX001"
# the block format by hand: ids 1030, 1025 in block 1 of 1024 ids, impacts 0.5, 2
is "$(Q "SELECT encode(codevec_bm25_pack('{1025,1030}', '{2,0.5}', 10), 'hex')")" "01000600000000400000003f" \
	"pack by hand: offsets 1 and 6 (uint16), then 2 and 0.5 (float4), little-endian"
is "$(Q "SELECT string_agg(id || '=' || impact, ' ') FROM codevec_bm25_unpack(codevec_bm25_pack('{1025,1030}', '{2,0.5}', 10), 1, 10)")" \
	"1025=2 1030=0.5" "unpack gives them back"
is "$(Q "SELECT string_agg(id || '=' || impact, ' ') FROM codevec_bm25_unpack(codevec_bm25_edit(
	codevec_bm25_pack('{1025,1030}', '{2,0.5}', 10), 1, 10, '{1025,1999}', '{1024,1030}', '{1,3}'), 1, 10)")" \
	"1024=1 1030=3" "edit removes 1025 (1999 absent: ignored), adds 1024 and gives 1030 a new impact"
is "$(Q "SELECT length(codevec_bm25_edit(codevec_bm25_pack('{7}', '{1}', 10), 0, 10, '{7}', '{}', '{}'))")" 0 "edit can empty a block"
is "$(Q "SELECT codevec_bm25_block_max(codevec_bm25_pack('{1025,1030}', '{2,0.5}', 10), 10)")" 2 "block_max: 2"
is "$(STATE "SELECT codevec_bm25_pack('{1030,1025}', '{1,1}', 10)")" 22023 "pack: ids not increasing: 22023"
is "$(STATE "SELECT codevec_bm25_pack('{1,1025}', '{1,1}', 10)")" 22023 "pack: ids in two blocks: 22023"
is "$(STATE "SELECT codevec_bm25_pack('{1}', '{NaN}', 10)")" 22023 "pack: a NaN impact: 22023"
is "$(STATE "SELECT codevec_bm25_pack('{1,NULL}', '{1,1}', 10)")" 22004 "pack: a NULL id: 22004"
is "$(STATE "SELECT codevec_bm25_pack('{1}', '{1,1}', 10)")" 22023 "pack: arrays of different lengths: 22023"
is "$(STATE "SELECT * FROM codevec_bm25_unpack('\\x0102030405', 0, 10)")" XX001 "unpack: 5 bytes are not a block: XX001"
is "$(STATE "SELECT * FROM codevec_bm25_unpack('\\x020001000000803f0000803f', 0, 10)")" XX001 "unpack: offsets not increasing: XX001"
is "$(STATE "SELECT codevec_bm25_edit(codevec_bm25_pack('{7}', '{1}', 10), 0, 10, '{}', '{5000}', '{1}')")" 22023 \
	"edit: an id outside the block: 22023"
is "$(STATE "SELECT * FROM codevec_bm25_impacts('a:1', '{0.1,0.2,0.4}', 1.2, 0.75, 10)")" 2202E "impacts: 3 weights: 2202E"
is "$(STATE "SELECT * FROM codevec_bm25_impacts('a:1', '{0.1,0.2,0.4,-1}', 1.2, 0.75, 10)")" 22023 "impacts: a negative weight: 22023"
is "$(STATE "SELECT * FROM codevec_bm25_impacts('a:1', '{0.1,0.2,0.4,1}', 1.2, 1.5, 10)")" 22023 "impacts: b 1.5: 22023"
is "$(STATE "SELECT * FROM codevec_bm25_impacts('a:1', '{0.1,0.2,0.4,1}', 1.2, 0.75, 0)")" 22023 "impacts: avgdl 0: 22023"
is "$(STATE "SELECT * FROM codevec_bm25_impacts('a:1', '{0.1,0.2,0.4,1}', 'NaN', 0.75, 10)")" 22023 "impacts: k1 NaN: 22023"
# hand-computed: 'a' twice at A, once at D; 'b' without positions; weights {D,C,B,A} = {0.5,0,0,1}:
# tf(a) = 2.5, tf(b) = 0.5, dl = 3; with k1 1, b 0, impact(a) = 2.5 * 2 / 3.5
is "$(Q "SELECT codevec_bm25_length('a:1A,2A,3 b', '{0.5,0,0,1}')")" 3 "length by hand: 3"
is "$(Q "SELECT string_agg(lexeme || '=' || impact, ' ') FROM codevec_bm25_impacts('a:1A,2A,3 b', '{0.5,0,0,1}', 1, 0, 7)")" \
	"a=1.4285715 b=0.6666667" "impacts by hand: 5/3.5 and 1/1.5 as real"

# ------------------------------------------------------------ code.preview
# one expression (inlined into code.search's plan) against its definition
# written as a query: the first `lines` non-blank lines, trimmed, joined
is "$(Q "SELECT count(*) FILTER (WHERE code.preview(c, a.l, b.m) IS DISTINCT FROM
	  (SELECT left(string_agg(x.l, E'\n' ORDER BY x.n), b.m)
	   FROM (SELECT btrim(t.l, E' \t\r') AS l, t.n
	         FROM regexp_split_to_table(left(c, 8000), E'\n') WITH ORDINALITY AS t(l, n)
	         WHERE btrim(t.l, E' \t\r') <> '' ORDER BY t.n LIMIT a.l) x)) || ' of ' || count(*)
	FROM (SELECT code FROM code.snippets UNION ALL
	      VALUES (''), (NULL), (E'\n'), (E'\r\n\r\n'), (E'  \n\t\n x \r\n y'), (E'\f\n\fa\n\v b \v'),
	             (E'a\rb\n\r\nc'), (E'\n\n\nx'), (E'x\n'), (repeat(E'ab \n', 5000)), (E' \u00a0x\u00a0 \n y'),
	             (E'a\n\n\n\n\n\nbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\nc\nd')) v(c),
	     (VALUES (1), (3), (0), (NULL), (256), (257)) a(l), (VALUES (200), (7), (NULL)) b(m)")" \
	"0 of $(( ($(Q "SELECT count(*) FROM code.snippets") + 12) * 18 ))" \
	"code.preview equals its definition as a query on every snippet and 12 edge cases (lines 0, 1, 3, 256, 257, NULL; max_chars 7, 200, NULL)"
psql -X -A -t -q -d "$DB" -c "EXPLAIN VERBOSE SELECT code.preview(code) FROM code.snippets" > "$TMP/preview.plan" 2>&1
grep -q "regexp_substr" "$TMP/preview.plan" && ! grep -q "preview(" "$TMP/preview.plan"
ok $? "code.preview is inlined into the caller's plan (no function call per row)"

# ------------------------------------------------------------ memory per call
# A set-returning function called once per row (code.bm25_refresh() calls
# codevec_bm25_impacts once per snippet) must leave nothing in the
# statement's memory: 20,000 calls in one statement against 200, the
# backend's memory contexts summed (pg_backend_memory_contexts, PostgreSQL
# 14 and later) inside the same statement, after the calls and before the
# statement's memory is freed.  Before the fix each call left ~820 bytes
# (InitMaterializedSRF's catalog lookup): 16 MB here.
Q "CREATE TABLE public.mem_rows AS SELECT g FROM generate_series(1, 20000) g" >/dev/null
mem_growth() {		# mem_growth FROM_ITEM -> bytes the contexts hold after 20,000 calls more than after 200
	local a b
	a=$(Q "WITH x AS MATERIALIZED (SELECT count(*) AS c FROM public.mem_rows m, code.bm25_params p
	       CROSS JOIN LATERAL $1 i WHERE m.g <= 200)
	       SELECT (SELECT c FROM x) >= 0, (SELECT sum(total_bytes) FROM pg_backend_memory_contexts)" | cut -d'|' -f2)
	b=$(Q "WITH x AS MATERIALIZED (SELECT count(*) AS c FROM public.mem_rows m, code.bm25_params p
	       CROSS JOIN LATERAL $1 i WHERE m.g <= 20000)
	       SELECT (SELECT c FROM x) >= 0, (SELECT sum(total_bytes) FROM pg_backend_memory_contexts)" | cut -d'|' -f2)
	echo $((b - a))
}
for f in "codevec_bm25_impacts(('w' || m.g || ':1A common:2,3')::tsvector, p.weights, p.k1, p.b, p.avgdl)" \
	"codevec_bm25_unpack(codevec_bm25_pack(ARRAY[m.g::bigint], '{1}', 16), 0, 16)" \
	"codevec_bm25_blocks_topk(ARRAY[1 + m.g % 50], '{1}', 10, 'code.bm25_postings_idx', p.block_shift)"; do
	g=$(mem_growth "$f")
	ok $([ -n "$g" ] && [ "$g" -lt 1048576 ]; echo $?) \
		"${f%%(*}: 20,000 calls in one statement hold less than 1 MB more than 200 (${g:-?} bytes)"
done

# ------------------------------------------------------------ a load builds the postings
# codevec-load's default (no --no-bm25): the first load builds them, so
# code.search ranks keywords by BM25 with nothing run by hand
Q "TRUNCATE code.snippets" >/dev/null
Q "DELETE FROM code.files" >/dev/null
"$LOADER" -q --no-embed --repo stdlib "$C"
is "$(Q "SELECT built AND n = (SELECT count(*) FROM code.snippets WHERE tsv IS NOT NULL) FROM code.bm25_params")" t \
	"a default load builds the BM25 postings (built, n = the snippets with a tsv)"
is "$(Q "SELECT count(*) FROM pg_stat_user_tables WHERE relname = 'bm25_postings' AND last_vacuum IS NOT NULL")" 1 \
	"... and vacuums them"
is "$(Q "SELECT (SELECT array_agg(id) FROM code.search('parse email headers', k => 10, mode => 'keyword'))
          = (SELECT array_agg(id) FROM code.bm25_search('parse email headers', 10))")" t \
	"code.search keyword mode after a default load = code.bm25_search"
"$LOADER" -q --no-embed --repo stdlib "$C"
is "$(Q "SELECT built FROM code.bm25_params")" t "a second load keeps them (no drift: not rebuilt)"

# ------------------------------------------------------------ truncate
GEN3=$(Q "SELECT generation FROM code.bm25_params")
Q "SELECT code.bm25_refresh()" >/dev/null
is "$(Q "SELECT generation > $GEN3 FROM code.bm25_params")" t "code.bm25_refresh() raises code.bm25_params.generation"
GEN3=$(Q "SELECT generation FROM code.bm25_params")
Q "TRUNCATE code.snippets" >/dev/null
is "$(Q "SELECT generation > $GEN3 FROM code.bm25_params")" t "TRUNCATE raises it too"
is "$(Q "SELECT built, n, (SELECT count(*) FROM code.bm25_postings), (SELECT count(*) FROM code.bm25_terms) FROM code.bm25_params")" \
	"f|0|0|0" "TRUNCATE empties the postings and marks BM25 not built"
is "$(Q "SELECT count(*) FROM code.search('parse email headers', mode => 'keyword')")" 0 \
	"code.search keyword mode after TRUNCATE: the ts_rank path, nothing found"
finish
