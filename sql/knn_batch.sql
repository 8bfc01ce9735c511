-- codevec_knn: batch k-NN over a gpuivf index (CPU path), compared with
-- independent per-query sequential scans (LATERAL ... ORDER BY ... LIMIT k)
SET client_min_messages = warning;
SET codevec.device = cpu;

-- tiny literal data: ties (duplicates, equal distances), a zero vector
-- (cosine NaN, last), a NULL (not indexed, never returned)
CREATE TABLE kb (id int PRIMARY KEY, emb codevec(3), label text);
INSERT INTO kb VALUES
	(1, '[1,0,0]', 'x'), (2, '[0,1,0]', 'y'), (3, '[1,1,0]', 'xy'), (4, '[1,0,0]', 'x again'),
	(5, NULL, 'null'), (6, '[0,0,0]', 'zero'), (7, '[-1,0,0]', '-x'), (8, '[0,0,2]', '2z');
CREATE INDEX kb_l2 ON kb USING gpuivf (emb codevec_l2_ops);
CREATE INDEX kb_ip ON kb USING gpuivf (emb codevec_ip_ops);
CREATE INDEX kb_cos ON kb USING gpuivf (emb codevec_cosine_ops);
SELECT r.query, r.rank, k.id, r.distance
FROM codevec_knn('kb_l2', ARRAY['[1,0,0]', '[0,0,1]']::codevec[], 3) r JOIN kb k ON k.ctid = r.heap_tid
ORDER BY r.query, r.rank;
SELECT r.query, r.rank, k.id, r.distance
FROM codevec_knn('kb_ip', ARRAY['[1,0,0]']::codevec[], 10) r JOIN kb k ON k.ctid = r.heap_tid
ORDER BY r.query, r.rank;
SELECT r.query, r.rank, k.id, r.distance
FROM codevec_knn('kb_cos', ARRAY['[0,1,0]', '[0,0,0]']::codevec[], 10) r JOIN kb k ON k.ctid = r.heap_tid
ORDER BY r.query, r.rank;
-- a one-element array and its subscripts: query is the 1-based position
SELECT query, rank, heap_tid FROM codevec_knn('kb_l2', '[5:5]={"[0,1,0]"}'::codevec[], 1);
-- empty array, NULL arguments: no rows
SELECT count(*) FROM codevec_knn('kb_l2', '{}'::codevec[], 5);
SELECT count(*) FROM codevec_knn('kb_l2', NULL, 5);
SELECT count(*) FROM codevec_knn('kb_l2', ARRAY['[1,0,0]']::codevec[], NULL);

-- errors, with their SQLSTATEs
CREATE FUNCTION pg_temp.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE sql;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
SELECT pg_temp.err($$SELECT * FROM codevec_knn('kb', ARRAY['[1,0,0]']::codevec[], 1)$$) AS table_not_index;
SELECT pg_temp.err($$SELECT * FROM codevec_knn('kb_pkey', ARRAY['[1,0,0]']::codevec[], 1)$$) AS btree_index;
SELECT pg_temp.err($$SELECT * FROM codevec_knn(0, ARRAY['[1,0,0]']::codevec[], 1)$$) AS no_relation;
SELECT pg_temp.err($$SELECT * FROM codevec_knn('kb_l2', ARRAY['[1,0,0]']::codevec[], 0)$$) AS k_0;
SELECT pg_temp.err($$SELECT * FROM codevec_knn('kb_l2', ARRAY['[1,0,0]']::codevec[], 1025)$$) AS k_1025;
SELECT pg_temp.err($$SELECT * FROM codevec_knn('kb_l2', ARRAY['[1,0,0]']::codevec[], -1)$$) AS k_negative;
SELECT pg_temp.err($$SELECT * FROM codevec_knn('kb_l2', '{}'::codevec[], 0)$$) AS k_0_empty;
SELECT pg_temp.err($$SELECT * FROM codevec_knn('kb_l2', ARRAY['[1,0,0]', NULL]::codevec[], 1)$$) AS null_query;
SELECT pg_temp.err($$SELECT * FROM codevec_knn('kb_l2', ARRAY['[1,0,0]', '[1,0]']::codevec[], 1)$$) AS wrong_dims_l2;
SELECT pg_temp.err($$SELECT * FROM codevec_knn('kb_ip', ARRAY['[1,0,0,0]']::codevec[], 1)$$) AS wrong_dims_ip;
SELECT pg_temp.err($$SELECT * FROM codevec_knn('kb_cos', ARRAY['[1]']::codevec[], 1)$$) AS wrong_dims_cos;
-- the same message as the operator's, plus which query
SELECT * FROM codevec_knn('kb_l2', ARRAY['[1,0,0]', '[1,0,0]', '[1,0]']::codevec[], 1);
SELECT * FROM codevec_knn('kb_l2', ARRAY['[1,0,0]', NULL]::codevec[], 1);
-- privileges: SELECT on the table is needed; row-level security is refused
CREATE ROLE codevec_knn_reader;
SET ROLE codevec_knn_reader;
SELECT pg_temp.err($$SELECT * FROM codevec_knn('kb_l2', ARRAY['[1,0,0]']::codevec[], 1)$$) AS no_select;
RESET ROLE;
GRANT SELECT ON kb TO codevec_knn_reader;
SET ROLE codevec_knn_reader;
SELECT count(*) AS with_select FROM codevec_knn('kb_l2', ARRAY['[1,0,0]']::codevec[], 2);
RESET ROLE;
ALTER TABLE kb ENABLE ROW LEVEL SECURITY;
CREATE POLICY kb_x ON kb FOR SELECT USING (label LIKE 'x%');
SET ROLE codevec_knn_reader;
SELECT pg_temp.err($$SELECT * FROM codevec_knn('kb_l2', ARRAY['[1,0,0]']::codevec[], 1)$$) AS rls;
RESET ROLE;
ALTER TABLE kb DISABLE ROW LEVEL SECURITY;
DROP POLICY kb_x ON kb;
REVOKE SELECT ON kb FROM codevec_knn_reader;
DROP ROLE codevec_knn_reader;

-- exactness on random data: 800 rows of 16 dimensions, with duplicates
-- (ties broken by ctid), rows of small integers (many equal distances), a
-- zero vector and NULLs; 40 queries, some equal to rows, one all zero
SELECT setseed(0.25);
CREATE TABLE kr (id int, emb codevec(16), label text) WITH (fillfactor = 50);
INSERT INTO kr SELECT i, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 16) WHERE i > 0), 'r'
FROM generate_series(1, 700) i;
INSERT INTO kr SELECT 700 + i, (SELECT array_agg(floor(random() * 3) - 1)::real[] FROM generate_series(1, 16) WHERE i > 0), 'int'
FROM generate_series(1, 60) i;
INSERT INTO kr SELECT id + 1000, emb, 'dup' FROM kr WHERE id % 20 = 0;
INSERT INTO kr VALUES (2000, array_fill(0, ARRAY[16])::real[], 'zero'), (2001, NULL, 'null'), (2002, NULL, 'null');
CREATE INDEX kr_l2 ON kr USING gpuivf (emb codevec_l2_ops);
CREATE INDEX kr_ip ON kr USING gpuivf (emb codevec_ip_ops);
CREATE INDEX kr_cos ON kr USING gpuivf (emb codevec_cosine_ops);
CREATE TABLE kq (n int, q codevec(16));
INSERT INTO kq SELECT row_number() OVER (ORDER BY id), emb FROM kr WHERE id % 37 = 1 OR id IN (705, 1020);
INSERT INTO kq SELECT 100 + i, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 16) WHERE i > 0)
FROM generate_series(1, 15) i;
INSERT INTO kq VALUES (200, array_fill(0, ARRAY[16])::real[]);
SELECT count(*) AS queries FROM kq;
-- the join back through heap_tid is a TID Scan in a nested loop (the row
-- estimate, queries x k, comes from codevec_knn_support)
ANALYZE kr;
EXPLAIN (COSTS OFF)
SELECT k.id, r.distance
FROM codevec_knn('kr_l2', ARRAY[(SELECT q FROM kq WHERE n = 1), (SELECT q FROM kq WHERE n = 2)], 3) r
JOIN kr k ON k.ctid = r.heap_tid;
EXPLAIN (COSTS OFF)
SELECT k.id, r.distance
FROM codevec_knn('kr_l2', '{"[1,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]"}', 3) r
JOIN kr k ON k.ctid = r.heap_tid;

-- diff(table, index, op, k): (query, rank) rows where codevec_knn and the
-- sequential scans differ (TID, or distance bit for bit), and rows compared
CREATE FUNCTION pg_temp.diff(tab regclass, idx regclass, op text, k int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE bad bigint; n bigint;
BEGIN
	SET LOCAL enable_indexscan = off;
	SET LOCAL enable_bitmapscan = off;
	EXECUTE format($q$
		WITH e AS (
			SELECT q.rn AS query, s.rank, s.ctid AS heap_tid, s.d AS distance
			FROM (SELECT row_number() OVER (ORDER BY n) AS rn, q FROM kq) q
			CROSS JOIN LATERAL (
				SELECT ctid, emb %1$s q.q AS d, row_number() OVER (ORDER BY emb %1$s q.q, ctid) AS rank
				FROM %4$s WHERE emb IS NOT NULL ORDER BY emb %1$s q.q, ctid LIMIT %2$s) s),
		g AS (SELECT * FROM codevec_knn(%3$L, (SELECT array_agg(q ORDER BY n) FROM kq), %2$s))
		SELECT count(*) FILTER (WHERE e.query IS NULL OR g.query IS NULL OR e.heap_tid <> g.heap_tid
								OR float8send(e.distance) <> float8send(g.distance)),
			   count(*)
		FROM e FULL JOIN g ON e.query = g.query AND e.rank = g.rank$q$, op, k, idx, tab) INTO bad, n;
	RETURN bad || ' of ' || n;
END $$;
-- every opclass, k = 1, 10, 100 and more than the table's 799 vectors
SELECT op, k, pg_temp.diff('kr', idx, op, k) AS mismatches
FROM (VALUES ('kr_l2', '<->'), ('kr_ip', '<#>'), ('kr_cos', '<=>')) o(idx, op),
     (VALUES (1), (10), (100), (1000)) ks(k)
ORDER BY idx, k;

-- dead tuples: deleted rows stay in the index until VACUUM
DELETE FROM kr WHERE id % 3 = 0;
SELECT op, k, pg_temp.diff('kr', idx, op, k) AS after_delete
FROM (VALUES ('kr_l2', '<->'), ('kr_ip', '<#>'), ('kr_cos', '<=>')) o(idx, op), (VALUES (10), (1000)) ks(k)
ORDER BY idx, k;
VACUUM kr;
SELECT op, k, pg_temp.diff('kr', idx, op, k) AS after_vacuum
FROM (VALUES ('kr_l2', '<->'), ('kr_ip', '<#>'), ('kr_cos', '<=>')) o(idx, op), (VALUES (10), (1000)) ks(k)
ORDER BY idx, k;
-- a query whose nearest rows are all dead still gets k live rows
DELETE FROM kr WHERE emb = (SELECT q FROM kq WHERE n = 1) OR id % 5 = 1;
SELECT count(*) = 10 AS ten_live_rows,
       bool_and(k.id % 5 <> 1) AS none_deleted
FROM codevec_knn('kr_l2', ARRAY[(SELECT q FROM kq WHERE n = 1)], 10) r JOIN kr k ON k.ctid = r.heap_tid;
SELECT pg_temp.diff('kr', 'kr_l2', '<->', 10) AS most_nearest_dead;
-- updates: HOT (the index TID is the chain's root; heap_tid the live version)
-- and non-HOT (a new index entry, the old one dead)
BEGIN;
UPDATE kr SET label = label || '+' WHERE id % 4 = 1;
SELECT n_tup_hot_upd > 0 AS some_hot FROM pg_stat_xact_user_tables WHERE relname = 'kr';
COMMIT;
UPDATE kr SET emb = emb * '[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,2]' WHERE id % 7 = 2;
SELECT op, pg_temp.diff('kr', idx, op, 10) AS after_updates
FROM (VALUES ('kr_l2', '<->'), ('kr_ip', '<#>'), ('kr_cos', '<=>')) o(idx, op) ORDER BY idx;
-- this transaction's own writes are visible, rolled-back ones are not
BEGIN;
INSERT INTO kr SELECT 5000 + n, q, 'tx' FROM kq;
DELETE FROM kr WHERE id % 11 = 0;
SELECT pg_temp.diff('kr', 'kr_cos', '<=>', 10) AS in_transaction;
SELECT count(*) AS own_inserts_found FROM codevec_knn('kr_l2', (SELECT array_agg(q ORDER BY n) FROM kq), 1) r
JOIN kr k ON k.ctid = r.heap_tid WHERE k.id >= 5000 AND r.distance = 0;
ROLLBACK;
SELECT count(*) AS rolled_back_found FROM codevec_knn('kr_l2', (SELECT array_agg(q ORDER BY n) FROM kq), 5) r
JOIN kr k ON k.ctid = r.heap_tid WHERE k.id >= 5000;
SELECT op, pg_temp.diff('kr', idx, op, 100) AS after_rollback
FROM (VALUES ('kr_l2', '<->'), ('kr_ip', '<#>'), ('kr_cos', '<=>')) o(idx, op) ORDER BY idx;

-- IVF: with gpuivf.probes = lists the answer is the flat (exact) one; with
-- fewer probes it is what an index scan with LIMIT k returns
CREATE TABLE ki (id int, emb codevec(16));
INSERT INTO ki SELECT id, emb FROM kr;
CREATE INDEX ki_l2 ON ki USING gpuivf (emb codevec_l2_ops) WITH (lists = 8);
CREATE INDEX ki_cos ON ki USING gpuivf (emb codevec_cosine_ops) WITH (lists = 8);
CREATE INDEX ki_ip ON ki USING gpuivf (emb codevec_ip_ops) WITH (lists = 8);
DELETE FROM ki WHERE id % 10 = 3;	-- dead tuples in the lists too
SET gpuivf.probes = 8;
SELECT op, k, pg_temp.diff('ki', idx, op, k) AS ivf_all_probes
FROM (VALUES ('ki_l2', '<->'), ('ki_ip', '<#>'), ('ki_cos', '<=>')) o(idx, op), (VALUES (10), (1000)) ks(k)
ORDER BY idx, k;
SET gpuivf.probes = 1;
SELECT pg_temp.diff('ki', 'ki_l2', '<->', 10) NOT LIKE '0 %' AS ivf_1_probe_is_not_exact;
-- ivfdiff(index, op, k): rows where codevec_knn and per-query index scans differ
CREATE FUNCTION pg_temp.ivfdiff(idx regclass, op text, k int) RETURNS text LANGUAGE plpgsql AS $$
DECLARE bad bigint; n bigint;
BEGIN
	SET LOCAL enable_seqscan = off;
	SET LOCAL enable_bitmapscan = off;
	EXECUTE format($q$
		WITH e AS (
			SELECT q.rn AS query, s.rank, s.ctid AS heap_tid, s.d AS distance
			FROM (SELECT row_number() OVER (ORDER BY n) AS rn, q FROM kq) q
			CROSS JOIN LATERAL (
				SELECT ctid, d, row_number() OVER () AS rank
				FROM (SELECT ctid, emb %1$s q.q AS d FROM ki ORDER BY emb %1$s q.q LIMIT %2$s) i) s),
		g AS (SELECT * FROM codevec_knn(%3$L, (SELECT array_agg(q ORDER BY n) FROM kq), %2$s))
		SELECT count(*) FILTER (WHERE e.query IS NULL OR g.query IS NULL OR e.heap_tid <> g.heap_tid
								OR float8send(e.distance) <> float8send(g.distance)),
			   count(*)
		FROM e FULL JOIN g ON e.query = g.query AND e.rank = g.rank$q$, op, k, idx) INTO bad, n;
	RETURN bad || ' of ' || n;
END $$;
-- one index per opclass at a time, so the scans use that one
DROP INDEX ki_cos, ki_ip;
SET gpuivf.probes = 1;
SELECT pg_temp.ivfdiff('ki_l2', '<->', 10) AS ivf_1_probe_k10, pg_temp.ivfdiff('ki_l2', '<->', 300) AS ivf_1_probe_k300;
SET gpuivf.probes = 3;
SELECT pg_temp.ivfdiff('ki_l2', '<->', 50) AS ivf_3_probes_k50;
-- the per-query side really is an index scan of ki_l2
CREATE FUNCTION pg_temp.uses_index(sql text, idx text) RETURNS bool LANGUAGE plpgsql AS $$
DECLARE l text;
BEGIN
	SET LOCAL enable_seqscan = off;
	SET LOCAL enable_bitmapscan = off;
	FOR l IN EXECUTE 'EXPLAIN (COSTS OFF) ' || sql LOOP
		IF l LIKE '%Index Scan using ' || idx || ' on %' THEN
			RETURN true;
		END IF;
	END LOOP;
	RETURN false;
END $$;
SELECT pg_temp.uses_index('SELECT s.ctid FROM kq CROSS JOIN LATERAL (SELECT ctid FROM ki ORDER BY emb <-> kq.q LIMIT 10) s', 'ki_l2') AS lateral_index_scan;
DROP INDEX ki_l2;
CREATE INDEX ki_cos ON ki USING gpuivf (emb codevec_cosine_ops) WITH (lists = 8);
SET gpuivf.probes = 2;
SELECT pg_temp.ivfdiff('ki_cos', '<=>', 10) AS ivf_cos_2_probes_k10, pg_temp.ivfdiff('ki_cos', '<=>', 200) AS ivf_cos_2_probes_k200;
RESET gpuivf.probes;

-- near-duplicates: every pair of rows at cosine distance < 0.001 (the
-- duplicates made above), batches of 100 rows per call, each row searched
-- among its 5 nearest, joined back through heap_tid
WITH b AS (
	SELECT id / 100 AS batch, array_agg(id ORDER BY id) AS ids, array_agg(emb ORDER BY id) AS embs
	FROM kr WHERE emb IS NOT NULL GROUP BY 1)
SELECT count(*) AS pairs,
       count(*) = (SELECT count(*) FROM kr a JOIN kr c ON a.id < c.id AND a.emb <=> c.emb < 0.001) AS all_pairs_found,
       bool_and(s.id = b.ids[r.query] + 1000) AS pairs_are_the_duplicates
FROM b CROSS JOIN LATERAL codevec_knn('kr_cos', b.embs, 5) r
JOIN kr s ON s.ctid = r.heap_tid
WHERE r.distance < 0.001 AND b.ids[r.query] < s.id;

DROP TABLE kb, kr, kq, ki;
