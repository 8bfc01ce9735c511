# test/lib-knn.sh — exactness checks of GPU k-NN answers against sequential
# scans, shared by test/fakecuda/run.sh (fake GPUs) and test/gpu/multigpu.sh
# (the H200). Sourced; expects tables mt (id int, emb codevec(D)) and
# mq (qid int, emb codevec(D), 20 rows), indexes mt_l2, mt_ip, mt_cos,
# mt_ivf_l2, mt_ivf_cos, PROBES (every IVF list), and test/lib.sh's
# tap_ok / tap_not_ok (test/gpu/setup.sh sources it).
#
#   only INDEX          SQL dropping the other indexes (in a transaction
#                       that rolls back: the planner may use INDEX alone)
#   same INDEX OP K [LABEL]
#                       every query's index scan (codevec.device = cuda,
#                       every IVF list probed) equals its sequential scan
#                       ordered by (distance, ctid), ids in order; one
#                       snapshot for both
#   knn INDEX OP K [LABEL]
#                       one codevec_knn call (cuda) equals per-query
#                       sequential scans: heap TIDs in order and distances
#                       bit for bit
#   prefetched TABLE QTABLE K
#                       for every query of QTABLE (column emb), its
#                       sequential scan of TABLE by cosine, then
#                       codevec_gpu_prefetch(TABLE, query, K) and the index
#                       scan (cuda): prints "mismatches=N posted=M"
#   clients LOOPS LOGPREFIX
#                       8 concurrent sessions (codevec.device = cuda),
#                       each running every query of mq LOOPS times by
#                       cosine, its top 10 ids into table mres (client,
#                       qid, ids), in the background (the caller waits);
#                       LOGPREFIXN.out their output

only() {
	local keep=$1 i drops=""
	for i in mt_l2 mt_ip mt_cos mt_ivf_l2 mt_ivf_cos; do
		[ "$i" = "$keep" ] || drops="$drops DROP INDEX IF EXISTS $i;"
	done
	echo "$drops"
}

same() {
	local res
	res=$(psql -qAtX 2>&1 <<SQL
SET codevec.device = cuda;
SET gpuivf.probes = $PROBES;
BEGIN ISOLATION LEVEL REPEATABLE READ;
$(only "$1")
DO \$\$
DECLARE r record; a int[]; b int[]; bad int := 0;
BEGIN
	FOR r IN SELECT * FROM mq ORDER BY qid LOOP
		SET LOCAL enable_indexscan = off; SET LOCAL enable_seqscan = on;
		SELECT array_agg(id) INTO a FROM (SELECT id FROM mt ORDER BY emb $2 r.emb, ctid LIMIT $3) s;
		SET LOCAL enable_indexscan = on; SET LOCAL enable_seqscan = off;
		SELECT array_agg(id) INTO b FROM (SELECT id FROM mt ORDER BY emb $2 r.emb LIMIT $3) s;
		IF a IS DISTINCT FROM b THEN bad := bad + 1; END IF;
	END LOOP;
	RAISE NOTICE 'differ=%', bad;
END \$\$;
ROLLBACK;
SQL
)
	if grep -q "NOTICE:  differ=0" <<<"$res"; then
		tap_ok "${4:-}$1 k=$3: 20 index scans equal sequential scans"
	else
		tap_not_ok "${4:-}$1 k=$3: $(grep -E 'differ|ERROR|WARNING' <<<"$res" | head -2 | tr '\n' ' ')"
	fi
}

knn() {
	local res
	res=$(psql -qAtX 2>&1 <<SQL
SET codevec.device = cuda;
SET gpuivf.probes = $PROBES;
BEGIN ISOLATION LEVEL REPEATABLE READ;
CREATE TEMP TABLE e ON COMMIT DROP AS
SELECT q.n AS query, s.rank, s.ctid AS heap_tid, s.d AS distance
FROM (SELECT row_number() OVER (ORDER BY qid)::int AS n, emb FROM mq) q
CROSS JOIN LATERAL (SELECT ctid, emb $2 q.emb AS d, row_number() OVER (ORDER BY emb $2 q.emb, ctid)::int AS rank
	FROM mt ORDER BY emb $2 q.emb, ctid LIMIT $3) s;
CREATE TEMP TABLE g ON COMMIT DROP AS
SELECT * FROM codevec_knn('$1', (SELECT array_agg(emb ORDER BY qid) FROM mq), $3);
SELECT 'mismatches=' || count(*) FILTER (WHERE e.query IS NULL OR g.query IS NULL OR e.heap_tid <> g.heap_tid
                                          OR float8send(e.distance) <> float8send(g.distance)) || ' rows=' || count(*)
FROM e FULL JOIN g ON e.query = g.query AND e.rank = g.rank;
COMMIT;
SQL
)
	if grep -qx "mismatches=0 rows=$((20 * $3))" <<<"$res"; then
		tap_ok "${4:-}codevec_knn $1 k=$3 equals 20 sequential scans"
	else
		tap_not_ok "${4:-}codevec_knn $1 k=$3: $(grep -E 'mismatches|ERROR' <<<"$res" | head -2 | tr '\n' ' ')"
	fi
}

clients() {
	local loops=$1 log=$2 c
	for c in 1 2 3 4 5 6 7 8; do
		psql -qX -c "SET codevec.device = cuda" -c "SET enable_seqscan = off" -c "DO \$\$
			BEGIN
				FOR i IN 1..$loops LOOP
					INSERT INTO mres SELECT $c, qid, (SELECT array_agg(id) FROM (SELECT id FROM mt ORDER BY emb <=> mq.emb LIMIT 10) s) FROM mq;
				END LOOP;
			END \$\$" >"$log$c.out" 2>&1 &
	done
}

prefetched() {
	psql -qAtX 2>&1 <<SQL
SET codevec.device = cuda;
DO \$\$
DECLARE r record; a int[]; b int[]; bad int := 0; posted int := 0;
BEGIN
	FOR r IN SELECT emb FROM $2 LOOP
		SET LOCAL enable_indexscan = off; SET LOCAL enable_seqscan = on;
		SELECT array_agg(id) INTO a FROM (SELECT id FROM $1 ORDER BY emb <=> r.emb, ctid LIMIT $3) s;
		SET LOCAL enable_indexscan = on; SET LOCAL enable_seqscan = off;
		IF codevec_gpu_prefetch('$1', r.emb, $3) THEN posted := posted + 1; END IF;
		SELECT array_agg(id) INTO b FROM (SELECT id FROM $1 ORDER BY emb <=> r.emb LIMIT $3) s;
		IF a IS DISTINCT FROM b THEN bad := bad + 1; END IF;
	END LOOP;
	RAISE NOTICE 'mismatches=% posted=%', bad, posted;
END \$\$;
SQL
}
