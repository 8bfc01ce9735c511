-- the gpuivf index access method (CPU path)
SET client_min_messages = warning;
CREATE TABLE t_ivf (id int PRIMARY KEY, emb codevec(3), label text);
INSERT INTO t_ivf VALUES
	(1, '[1,0,0]', 'x'), (2, '[0,1,0]', 'y'), (3, '[0,0,1]', 'z'), (4, '[1,1,0]', 'xy'),
	(5, '[1,1,1]', 'xyz'), (6, '[-1,0,0]', '-x'), (7, '[0.9,0.1,0]', 'x-ish'), (8, '[2,0,0]', '2x'),
	(9, NULL, 'null'), (10, '[0,0,0]', 'zero'), (11, '[1,0,0]', 'x again');
CREATE INDEX t_ivf_cos ON t_ivf USING gpuivf (emb);
CREATE INDEX t_ivf_l2 ON t_ivf USING gpuivf (emb codevec_l2_ops);
CREATE INDEX t_ivf_ip ON t_ivf USING gpuivf (emb codevec_ip_ops) WITH (lists = 1);
\d t_ivf
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM t_ivf ORDER BY emb <=> '[1,0,0]' LIMIT 3;
EXPLAIN (COSTS OFF) SELECT id FROM t_ivf ORDER BY emb <-> '[1,0,0]' LIMIT 3;
EXPLAIN (COSTS OFF) SELECT id FROM t_ivf ORDER BY emb <#> '[1,0,0]' LIMIT 3;
-- rows in distance order, ties by ctid; NaN (zero vector) last; NULL not indexed
SELECT id, emb <=> '[1,0,0]' AS d FROM t_ivf ORDER BY emb <=> '[1,0,0]';
SELECT id, emb <-> '[1,0,0]' AS d FROM t_ivf ORDER BY emb <-> '[1,0,0]' LIMIT 5;
SELECT id, emb <#> '[1,0,0]' AS d FROM t_ivf ORDER BY emb <#> '[1,0,0]' LIMIT 5;
-- a filter: the scan keeps producing rows until LIMIT is met
SELECT id FROM t_ivf WHERE label LIKE '%y%' ORDER BY emb <-> '[1,0,0]' LIMIT 3;
-- inserts go to the index, deletes are vacuumed away
INSERT INTO t_ivf VALUES (12, '[0.99,0,0]', 'near x');
DELETE FROM t_ivf WHERE id = 1;
VACUUM t_ivf;
SELECT id FROM t_ivf ORDER BY emb <-> '[1,0,0]' LIMIT 3;
-- a NULL query: the strict operator folds to NULL and every row comes back
SELECT count(*) FROM (SELECT id FROM t_ivf ORDER BY emb <-> NULL) s;
-- wrong dimensions in the query or in an insert
SELECT id FROM t_ivf ORDER BY emb <-> '[1,0]' LIMIT 1;
RESET enable_seqscan;
-- bad options and unsupported columns
CREATE INDEX ON t_ivf USING gpuivf (emb) WITH (lists = 0);
CREATE INDEX ON t_ivf USING gpuivf (emb) WITH (lists = 40000);
CREATE INDEX ON t_ivf USING gpuivf (emb) WITH (nlist = 4);
CREATE TABLE t_nodim (emb codevec);
CREATE INDEX ON t_nodim USING gpuivf (emb);
CREATE TABLE t_big (emb codevec(2001));
CREATE INDEX ON t_big USING gpuivf (emb);
CREATE INDEX ON t_ivf USING gpuivf (label);
CREATE INDEX ON t_ivf USING gpuivf (emb, id);
DROP TABLE t_nodim, t_big;

-- exactness: 3000 random vectors, every opclass, lists = 1 equals a sequential
-- scan ordered by (distance, ctid), distances bit-identical
CREATE TABLE t_rand AS
SELECT i AS id, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 16) WHERE i > 0)::codevec(16) AS emb
FROM generate_series(1, 3000) i;
INSERT INTO t_rand SELECT id + 3000, emb FROM t_rand WHERE id <= 50;   -- duplicates: ties
CREATE INDEX t_rand_cos ON t_rand USING gpuivf (emb codevec_cosine_ops);
CREATE INDEX t_rand_l2 ON t_rand USING gpuivf (emb codevec_l2_ops);
CREATE INDEX t_rand_ip ON t_rand USING gpuivf (emb codevec_ip_ops);
CREATE TEMP TABLE qs AS SELECT id AS qid, emb AS q FROM t_rand WHERE id % 250 = 7;
CREATE FUNCTION pg_temp.same(op text, k int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE r record; a text; b text; bad int := 0;
BEGIN
	FOR r IN SELECT * FROM qs LOOP
		SET LOCAL enable_seqscan = on; SET LOCAL enable_indexscan = off;
		EXECUTE format('SELECT string_agg(id || '':'' || d, '','') FROM (SELECT id, emb %s $1 AS d FROM t_rand ORDER BY emb %s $1, ctid LIMIT %s) s', op, op, k) INTO a USING r.q;
		SET LOCAL enable_seqscan = off; SET LOCAL enable_indexscan = on;
		EXECUTE format('SELECT string_agg(id || '':'' || d, '','') FROM (SELECT id, emb %s $1 AS d FROM t_rand ORDER BY emb %s $1 LIMIT %s) s', op, op, k) INTO b USING r.q;
		IF a IS DISTINCT FROM b THEN bad := bad + 1; END IF;
	END LOOP;
	RETURN bad;
END $$;
SELECT pg_temp.same('<->', 10) AS l2_k10, pg_temp.same('<#>', 10) AS ip_k10, pg_temp.same('<=>', 10) AS cos_k10,
       pg_temp.same('<->', 3050) AS l2_all, pg_temp.same('<=>', 3050) AS cos_all;
-- the index scan really was used
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT id FROM t_rand ORDER BY emb <-> (SELECT q FROM qs LIMIT 1) LIMIT 10;
RESET enable_seqscan;

-- IVF: lists > 1, recall against the exact answer, probes widen the search
CREATE INDEX t_rand_ivf ON t_rand USING gpuivf (emb codevec_l2_ops) WITH (lists = 16);
DROP INDEX t_rand_l2;
CREATE FUNCTION pg_temp.recall(k int) RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE r record; exact int[]; got int[]; hit int := 0; total int := 0;
BEGIN
	FOR r IN SELECT * FROM qs LOOP
		-- the reference is a sequential scan: seq scans back on (the index
		-- branch below turns them off); EXECUTE plans each query afresh under
		-- these settings (a cached plan would keep the settings it was made with)
		SET LOCAL enable_seqscan = on; SET LOCAL enable_indexscan = off;
		EXECUTE 'SELECT array_agg(id) FROM (SELECT id FROM t_rand ORDER BY emb <-> $1, id LIMIT $2) s' INTO exact USING r.q, k;
		SET LOCAL enable_indexscan = on; SET LOCAL enable_seqscan = off;
		EXECUTE 'SELECT array_agg(id) FROM (SELECT id FROM t_rand ORDER BY emb <-> $1 LIMIT $2) s' INTO got USING r.q, k;
		hit := hit + (SELECT count(*) FROM unnest(got) g WHERE g = ANY (exact));
		total := total + k;
	END LOOP;
	RETURN hit::float8 / total;
END $$;
SET gpuivf.probes = 16;
SELECT pg_temp.recall(10) AS recall_all_probes;
SET gpuivf.probes = 4;
SELECT pg_temp.recall(10) >= 0.5 AS recall_4_probes_ok;
SET gpuivf.probes = 1;
-- one probe of 16 lists misses some neighbours: the reference is not the index
SELECT pg_temp.recall(10) < 1 AS recall_1_probe_below_1;
-- with one probe, a filter still gets its k rows (further lists are probed)
SET enable_seqscan = off;
SELECT count(*) FROM (SELECT id FROM t_rand WHERE id % 97 = 0 ORDER BY emb <-> (SELECT q FROM qs LIMIT 1) LIMIT 20) s;
RESET enable_seqscan;
RESET gpuivf.probes;
SET gpuivf.probes = 0;
-- IVF inserts land in the nearest list and are found
INSERT INTO t_rand VALUES (99999, (SELECT q FROM qs LIMIT 1));
SET enable_seqscan = off;
SELECT id FROM t_rand ORDER BY emb <-> (SELECT q FROM qs LIMIT 1), id LIMIT 3;
RESET enable_seqscan;
-- IVF on an empty table, then rows: every row is still found
CREATE TABLE t_empty (id int, emb codevec(4));
CREATE INDEX ON t_empty USING gpuivf (emb) WITH (lists = 4);
INSERT INTO t_empty SELECT i, ARRAY[i, 1, 0, 0]::real[] FROM generate_series(1, 100) i;
SET enable_seqscan = off;
SELECT count(*) FROM (SELECT id FROM t_empty ORDER BY emb <=> '[1,1,0,0]') s;
RESET enable_seqscan;
-- REINDEX and TRUNCATE keep the index valid
REINDEX INDEX t_rand_ivf;
TRUNCATE t_empty;
INSERT INTO t_empty VALUES (1, '[1,2,3,4]');
SET enable_seqscan = off;
SELECT id FROM t_empty ORDER BY emb <=> '[1,2,3,4]' LIMIT 1;
RESET enable_seqscan;
-- opclass validation
SELECT amvalidate(oid) FROM pg_opclass WHERE opcmethod = (SELECT oid FROM pg_am WHERE amname = 'gpuivf') ORDER BY opcname;
DROP TABLE t_ivf, t_rand, t_empty;
