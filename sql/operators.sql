-- distances, norms, arithmetic and comparison
SELECT '[1,2,3]'::codevec <-> '[3,2,1]' AS l2,
       '[1,2,3]'::codevec <#> '[3,2,1]' AS neg_ip,
       '[1,2,3]'::codevec <=> '[3,2,1]' AS cosine,
       '[1,2,3]'::codevec <+> '[3,2,1]' AS l1;
SELECT l2_distance('[0,0]', '[3,4]'), l2_squared_distance('[0,0]', '[3,4]'),
       inner_product('[1,2]', '[3,4]'), negative_inner_product('[1,2]', '[3,4]'),
       cosine_distance('[1,0]', '[0,1]'), cosine_distance('[1,1]', '[-1,-1]'),
       cosine_distance('[1,1]', '[2,2]'), l1_distance('[0,0]', '[3,-4]');
-- cosine with a zero vector is NaN, as pgvector
SELECT cosine_distance('[0,0]', '[1,1]');
SELECT codevec_dims('[1,2,3]'), codevec_norm('[3,4]'), codevec_norm('[0,0]');
SELECT l2_normalize('[3,4]'), l2_normalize('[0,0]'), l2_normalize('[-2]');
SELECT '[1,2]'::codevec + '[3,4]', '[1,2]'::codevec - '[3,5]', '[1,2]'::codevec * '[3,4]';
-- every dimension count 1..70 gives the textbook answer (SIMD tails)
SELECT bool_and(l2_distance(a, b) = sqrt(n)) AS l2_ok,
       bool_and(inner_product(a, b) = 2 * n) AS ip_ok,
       bool_and(l1_distance(a, b) = n) AS l1_ok,
       bool_and(abs(cosine_distance(c, d) - (1 - 1 / sqrt(2))) < 1e-6) AS cos_ok
FROM (SELECT n,
             array_fill(1::real, ARRAY[n])::codevec AS a,
             array_fill(2::real, ARRAY[n])::codevec AS b,
             (array_fill(1::real, ARRAY[n]) || array_fill(0::real, ARRAY[n]))::codevec AS c,
             array_fill(1::real, ARRAY[2 * n])::codevec AS d
      FROM generate_series(1, 70) n) s;
-- the operator spellings match the functions on random data, all kernels
CREATE TABLE t_ops AS
SELECT i, (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 1 + i % 50) j WHERE i > 0)::codevec AS a,
          (SELECT array_agg(random() - 0.5)::real[] FROM generate_series(1, 1 + i % 50) j WHERE i > 0)::codevec AS b
FROM generate_series(1, 500) i;
SELECT count(*) FILTER (WHERE (a <-> b) <> l2_distance(a, b)) AS l2_diff,
       count(*) FILTER (WHERE (a <#> b) <> -inner_product(a, b)) AS ip_diff,
       count(*) FILTER (WHERE (a <=> b) <> cosine_distance(a, b)) AS cos_diff,
       count(*) FILTER (WHERE (a <+> b) <> l1_distance(a, b)) AS l1_diff
FROM t_ops;
-- each kernel variant agrees with float8 arithmetic over real[] to float32 rounding
CREATE FUNCTION pg_temp.check_kernels() RETURNS TABLE (kernels text, max_rel_err_ok boolean) LANGUAGE plpgsql AS $$
DECLARE k text;
BEGIN
	FOREACH k IN ARRAY ARRAY['scalar', 'avx2', 'avx512'] LOOP
		BEGIN
			PERFORM set_config('codevec.cpu_kernels', k, true);
		EXCEPTION WHEN invalid_parameter_value THEN
			CONTINUE;		-- this CPU lacks it: nothing to compare
		END;
		RETURN QUERY
		SELECT 'checked', bool_and(
			abs(l2_distance(a, b) - sqrt(ref.l2sq)) <= 1e-5 * greatest(sqrt(ref.l2sq), 1e-3)
			AND abs(inner_product(a, b) - ref.ip) <= 1e-5 * greatest(ref.absip, 1e-3)
			AND abs(l1_distance(a, b) - ref.l1) <= 1e-5 * greatest(ref.l1, 1e-3))
		FROM t_ops,
		LATERAL (SELECT sum((x - y)^2) AS l2sq, sum(x * y) AS ip, sum(abs(x * y)) AS absip,
		                sum(abs(x - y)) AS l1
		         FROM unnest(a::real[], b::real[]) u(x, y)) ref;
	END LOOP;
	PERFORM set_config('codevec.cpu_kernels', 'auto', true);
END $$;
SELECT DISTINCT * FROM pg_temp.check_kernels();
SET codevec.cpu_kernels = scalar;
SHOW codevec.cpu_kernels;
SELECT '[1,2,3]'::codevec <-> '[3,2,1]';
RESET codevec.cpu_kernels;
SET codevec.cpu_kernels = sse9;
DROP TABLE t_ops;
-- comparison and btree: DISTINCT, GROUP BY, ORDER BY, UNIQUE
SELECT '[1,2]'::codevec < '[1,3]', '[1,2]'::codevec < '[1,2,0]', '[2]'::codevec > '[1,9]',
       '[1,2]'::codevec = '[1,2]', '[-0]'::codevec = '[0]', '[1,2]'::codevec <> '[1,2]',
       codevec_cmp('[1,2]', '[1,2]'), codevec_cmp('[1]', '[1,0]'), codevec_cmp('[3]', '[1,0]');
CREATE TABLE t_cmp (v codevec);
INSERT INTO t_cmp VALUES ('[3,1]'), ('[1,2]'), ('[1,2,3]'), ('[1,2]'), ('[0.5]'), ('[3,1]');
SELECT DISTINCT v FROM t_cmp ORDER BY v;
SELECT v, count(*) FROM t_cmp GROUP BY v ORDER BY v DESC;
CREATE UNIQUE INDEX ON t_cmp (v);
CREATE INDEX t_cmp_v ON t_cmp (v);
DELETE FROM t_cmp WHERE ctid NOT IN (SELECT min(ctid) FROM t_cmp GROUP BY v);
CREATE UNIQUE INDEX t_cmp_u ON t_cmp (v);
INSERT INTO t_cmp VALUES ('[0.5]');
SET enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT * FROM t_cmp WHERE v = '[1,2]';
SELECT * FROM t_cmp WHERE v = '[1,2]';
SELECT * FROM t_cmp WHERE v > '[1,2]' ORDER BY v;
RESET enable_seqscan;
DROP TABLE t_cmp;
