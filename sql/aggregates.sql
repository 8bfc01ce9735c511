-- sum(codevec) and avg(codevec)
CREATE TABLE t_agg (g int, v codevec(3));
INSERT INTO t_agg VALUES (1, '[1,2,3]'), (1, '[3,2,1]'), (2, '[1,1,1]'), (2, '[0.5,0.25,0]'), (2, '[-1,0,1]');
SELECT avg(v), sum(v) FROM t_agg;
SELECT g, avg(v), sum(v), count(*) FROM t_agg GROUP BY g ORDER BY g;
-- no rows: NULL, like sum/avg of numbers
SELECT avg(v), sum(v) FROM t_agg WHERE false;
-- NULLs are skipped
INSERT INTO t_agg VALUES (3, NULL);
SELECT avg(v), sum(v), count(v), count(*) FROM t_agg;
-- mixing dimensions is an error
SELECT avg(x) FROM (VALUES ('[1,2]'::codevec), ('[1,2,3]')) t(x);
SELECT sum(x) FROM (VALUES ('[1,2]'::codevec), ('[1]')) t(x);
-- float8 accumulation: exact where float4 accumulation would drift
SELECT sum(x) FROM (SELECT '[0.1]'::codevec AS x FROM generate_series(1, 100000)) s;
-- overflow of the float4 result
SELECT sum(x) FROM (VALUES ('[3e38]'::codevec), ('[3e38]')) t(x);
SELECT avg(x) FROM (VALUES ('[3e38]'::codevec), ('[3e38]')) t(x);
-- the same answer as per-element float8 arithmetic over real[]
CREATE TABLE t_agg2 AS
SELECT i % 7 AS g, ARRAY[random(), random() * 100, -random()]::real[] AS a FROM generate_series(1, 3000) i;
SELECT count(*) AS mismatches FROM (
	SELECT g, avg(a::codevec) AS ours,
	       ARRAY[avg(a[1]), avg(a[2]), avg(a[3])]::real[]::codevec AS ref
	FROM t_agg2 GROUP BY g
) s WHERE ours <> ref;
-- parallel aggregation uses the combine function and gives the same answer
ALTER TABLE t_agg2 ADD COLUMN v codevec(3);
UPDATE t_agg2 SET v = a;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT avg(v) FROM t_agg2;
CREATE TEMP TABLE par AS SELECT avg(v) AS a, sum(v) AS s FROM t_agg2;
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
SET max_parallel_workers_per_gather = 0;
SELECT l2_distance(p.a, s.a) < 1e-6 AS avg_same, l2_distance(p.s, s.s) < 1e-2 AS sum_same
FROM par p, (SELECT avg(v) AS a, sum(v) AS s FROM t_agg2) s;
RESET max_parallel_workers_per_gather;
DROP TABLE t_agg, t_agg2;
