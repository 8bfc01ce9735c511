#!/usr/bin/env bash
# test/gpu/mask.sh — GPU test target (not CI): rows removed by VACUUM are
# masked in the GPU service's copy instead of reloading it (GPU_REQUEST_MASK),
# on a CUDA host, as root, on the server of test/gpu/setup.sh.
#
#   bash test/gpu/mask.sh [ROWS]      (default 200000)
#
# After DELETE + VACUUM the copy must answer without an upload and exactly
# as a sequential scan: k = 10, 100 and 1,000 (where k plus the masked rows
# pass the kernels' largest k: a partial answer the scan must not take for
# the whole index), with a filter; then rows inserted into the delta tier
# and removed again; then more removed rows than a copy masks (it reloads);
# and an IVF index against its CPU scan. Ends with "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
rows=${1:-200000}
set --
source "$top/test/gpu/setup.sh"
"$kit/gen" "$rows" 384 42 >/tmp/mvec.bin
"$kit/gen" 30 384 7 >/tmp/mq.bin
psql -qX -v ON_ERROR_STOP=1 <<SQL
DROP TABLE IF EXISTS tm, qm;
CREATE TABLE tm (id int, emb codevec(384));
CREATE TABLE qm (qid int, emb codevec(384));
\copy tm FROM '/tmp/mvec.bin' WITH (FORMAT binary)
\copy qm FROM '/tmp/mq.bin' WITH (FORMAT binary)
INSERT INTO qm SELECT 1000 + id, emb FROM tm WHERE id % 20000 = 7;   -- queries equal to rows
CREATE INDEX tm_l2 ON tm USING gpuivf (emb codevec_l2_ops);
CREATE INDEX tm_ivf ON tm USING gpuivf (emb codevec_cosine_ops) WITH (lists = 100);
VACUUM ANALYZE tm; VACUUM ANALYZE qm;
SQL
rm -f /tmp/mvec.bin
same() {	# same OP K FILTER [PROBES]: GPU index scan vs sequential scan (flat) or CPU scan (IVF)
	psql -qAtX <<SQL
SET gpuivf.probes = ${4:-1};
DO \$\$
DECLARE r record; a int[]; b int[]; bad int := 0;
BEGIN
	FOR r IN SELECT * FROM qm LOOP
		IF ${4:-0} = 0 THEN
			SET LOCAL enable_indexscan = off; SET LOCAL enable_seqscan = on;
			SELECT array_agg(id) INTO a FROM (SELECT id FROM tm WHERE $3 ORDER BY emb $1 r.emb, ctid LIMIT $2) s;
		ELSE
			SET LOCAL enable_seqscan = off; SET LOCAL codevec.device = cpu;
			SELECT array_agg(id) INTO a FROM (SELECT id FROM tm WHERE $3 ORDER BY emb $1 r.emb LIMIT $2) s;
		END IF;
		SET LOCAL enable_indexscan = on; SET LOCAL enable_seqscan = off; SET LOCAL codevec.device = cuda;
		SELECT array_agg(id) INTO b FROM (SELECT id FROM tm WHERE $3 ORDER BY emb $1 r.emb LIMIT $2) s;
		IF a IS DISTINCT FROM b THEN bad := bad + 1; END IF;
	END LOOP;
	RAISE NOTICE 'mismatches=%', bad;
END \$\$;
SQL
}
expect0() {
	local res
	res=$(same "$2" "$3" "$4" "${5:-}" 2>&1 | grep -o 'mismatches=[0-9]*')
	[ "$res" = "mismatches=0" ] && { passed=$((passed + 1)); echo "ok $((passed + failed)) - $1"; } \
		|| { failed=$((failed + 1)); echo "not ok $((passed + failed)) - $1: ${res:-$(same "$2" "$3" "$4" "${5:-}" 2>&1 | tail -2)}"; }
}
explain() {	# explain OP INDEX [PROBES]: the gpuivf line of EXPLAIN ANALYZE
	psql -qAtX -c "SET codevec.device = cuda" -c "SET gpuivf.probes = ${3:-1}" \
		-c "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT id FROM tm ORDER BY emb $1 (SELECT emb FROM qm WHERE qid = 3) LIMIT 10" | grep "^gpuivf: $2"
}
expect0 "the copy loaded: GPU equals the sequential scan" '<->' 10 true
expect0 "IVF copy loaded: GPU equals the CPU scan" '<=>' 10 true 8

psql -qX -c "DELETE FROM tm WHERE id % 2003 = 7" -c "VACUUM (INDEX_CLEANUP ON) tm" >/dev/null
line=$(explain '<->' tm_l2); echo "# $line"
check "after DELETE + VACUUM (100 rows) the copy was masked, not loaded again" "SELECT '$line' LIKE '%on GPU%' AND '$line' NOT LIKE '%upload%'" t
expect0 "masked: k=10 equals the sequential scan" '<->' 10 true
expect0 "masked: k=100 equals the sequential scan" '<->' 100 true
expect0 "masked: k=1000 (k + masked past 1024: partial answers) equals the sequential scan" '<->' 1000 true
expect0 "masked: with a filter equals the sequential scan" '<->' 10 "id % 5 = 1"
check "a query equal to a removed row does not find it" \
	"SET codevec.device = cuda; SELECT count(*) FROM (SELECT id FROM tm ORDER BY emb <-> (SELECT emb FROM qm WHERE qid = 1007) LIMIT 1) s WHERE id = 7" 0
line=$(explain '<=>' tm_ivf 8); echo "# $line"
check "IVF: masked, not loaded again" "SELECT '$line' LIKE '%on GPU%' AND '$line' NOT LIKE '%upload%'" t
expect0 "IVF masked: GPU equals the CPU scan" '<=>' 10 true 8

# rows of the delta tier, then removed again
psql -qX -c "INSERT INTO tm SELECT 500000 + qid, emb FROM qm WHERE qid < 1000" >/dev/null
expect0 "inserts after masking (delta tier): equals the sequential scan" '<->' 10 true
psql -qX -c "DELETE FROM tm WHERE id >= 500000 AND id % 2 = 0" -c "VACUUM (INDEX_CLEANUP ON) tm" >/dev/null
line=$(explain '<->' tm_l2); echo "# $line"
expect0 "delta rows removed by VACUUM: equals the sequential scan" '<->' 10 true
check "a query equal to a removed delta row does not find it" \
	"SET codevec.device = cuda; SELECT count(*) FROM (SELECT id FROM tm ORDER BY emb <-> (SELECT emb FROM qm WHERE qid = 2) LIMIT 1) s WHERE id = 500002" 0

# more removed rows than a copy masks (512): it loads again
psql -qX -c "DELETE FROM tm WHERE id % 101 = 3" -c "VACUUM (INDEX_CLEANUP ON) tm" >/dev/null
line=$(explain '<->' tm_l2); echo "# $line"
check "past 512 masked rows the copy is loaded again" "SELECT '$line' LIKE '%on GPU%upload%'" t
expect0 "after the reload: equals the sequential scan" '<->' 100 true
psql -qX -c "DROP TABLE tm, qm" >/dev/null
tap_result
