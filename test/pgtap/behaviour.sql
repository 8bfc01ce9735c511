-- pgTAP: codevec behaviour checked against an independent computation in
-- plain SQL over real[] (float8 arithmetic, no codevec function involved)
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS codevec;
BEGIN;
SELECT plan(25);

-- pairs of random vectors of many lengths: 1..100 and the model sizes
CREATE TEMP TABLE pairs AS
SELECT i, n,
       (SELECT array_agg((random() * 2 - 1)::real) FROM generate_series(1, n) WHERE i > 0) AS a,
       (SELECT array_agg((random() * 2 - 1)::real) FROM generate_series(1, n) WHERE i > 0) AS b
FROM generate_series(1, 600) i,
     LATERAL (SELECT (ARRAY[1 + i % 100, 384, 768, 1024, 17, 31, 33, 65])[1 + i % 8] AS n) d;
CREATE TEMP TABLE ref AS
SELECT i, n, a, b, a::codevec AS va, b::codevec AS vb,
       (SELECT sqrt(sum((x::float8 - y::float8) ^ 2)) FROM unnest(a, b) u(x, y)) AS l2,
       (SELECT sum(x::float8 * y::float8) FROM unnest(a, b) u(x, y)) AS ip,
       (SELECT sum(abs(x::float8 * y::float8)) FROM unnest(a, b) u(x, y)) AS abs_ip,
       (SELECT sum(abs(x::float8 - y::float8)) FROM unnest(a, b) u(x, y)) AS l1,
       (SELECT sqrt(sum(x::float8 ^ 2)) FROM unnest(a) u(x)) AS na,
       (SELECT sqrt(sum(y::float8 ^ 2)) FROM unnest(b) u(y)) AS nb
FROM pairs;

-- float32 accumulation over n <= 1024 terms: relative error well under 1e-4
-- (a row fails unless "error <= tolerance" is TRUE: a NULL or NaN result
-- fails too; "error > tolerance" would let a NULL through)
SELECT is((SELECT count(*)::int FROM ref WHERE (abs((va <-> vb) - l2) <= 1e-5 * l2 + 1e-6) IS NOT TRUE), 0, '<-> matches sqrt(sum((a-b)^2)) over real[]');
SELECT is((SELECT count(*)::int FROM ref WHERE (abs(l2_distance(va, vb) - l2) <= 1e-5 * l2 + 1e-6) IS NOT TRUE), 0, 'l2_distance matches');
SELECT is((SELECT count(*)::int FROM ref WHERE (abs(l2_squared_distance(va, vb) - l2 ^ 2) <= 1e-5 * l2 ^ 2 + 1e-6) IS NOT TRUE), 0, 'l2_squared_distance matches');
SELECT is((SELECT count(*)::int FROM ref WHERE (abs(inner_product(va, vb) - ip) <= 1e-5 * abs_ip + 1e-6) IS NOT TRUE), 0, 'inner_product matches sum(a*b)');
SELECT is((SELECT count(*)::int FROM ref WHERE (abs((va <#> vb) + ip) <= 1e-5 * abs_ip + 1e-6) IS NOT TRUE), 0, '<#> is minus sum(a*b)');
SELECT is((SELECT count(*)::int FROM ref WHERE (abs((va <=> vb) - (1 - ip / (na * nb))) <= 1e-5) IS NOT TRUE), 0, '<=> matches 1 - a.b/(|a||b|)');
SELECT is((SELECT count(*)::int FROM ref WHERE (abs(cosine_distance(va, vb) - (1 - ip / (na * nb))) <= 1e-5) IS NOT TRUE), 0, 'cosine_distance matches');
SELECT is((SELECT count(*)::int FROM ref WHERE (abs(l1_distance(va, vb) - l1) <= 1e-5 * l1 + 1e-6) IS NOT TRUE), 0, 'l1_distance matches sum(|a-b|)');
SELECT is((SELECT count(*)::int FROM ref WHERE (abs(codevec_norm(va) - na) <= 1e-12 * na) IS NOT TRUE), 0, 'codevec_norm matches sqrt(sum(a^2)) in float8');
-- every count of bad rows below is over these 600 rows (an empty ref would pass them all)
SELECT is((SELECT count(*)::int FROM ref WHERE va IS NOT NULL AND vb IS NOT NULL), 600, 'the reference holds 600 pairs');
SELECT is((SELECT count(*)::int FROM ref WHERE codevec_dims(va) IS DISTINCT FROM n), 0, 'codevec_dims is the array length');
SELECT is((SELECT count(*)::int FROM ref r,
           LATERAL (SELECT max(abs(x::float8 - (y::float8 / r.na))) AS e
                    FROM unnest(l2_normalize(r.va)::real[], r.a) u(x, y)) m
           WHERE (m.e <= 1e-7) IS NOT TRUE), 0, 'l2_normalize matches a / |a| element by element');

-- comparison agrees with PostgreSQL's own real[] ordering (lexicographic, shorter first)
SELECT is((SELECT count(*)::int FROM ref WHERE (va < vb) <> (a < b) OR (va = vb) <> (a = b) OR (va > vb) <> (a > b)), 0,
          '<, =, > agree with real[] comparison');
SELECT is((SELECT count(*)::int FROM ref r1 JOIN ref r2 ON r1.i < r2.i AND r1.i % 37 = 0
           WHERE sign(codevec_cmp(r1.va, r2.va)) <> sign(btarraycmp(r1.a, r2.a))), 0,
          'codevec_cmp agrees with btarraycmp across lengths');

-- aggregates against per-element avg/sum over unnest
CREATE TEMP TABLE aggin AS
SELECT i % 5 AS g, (SELECT array_agg((random() * 10 - 5)::real) FROM generate_series(1, 24) WHERE i > 0) AS a
FROM generate_series(1, 2000) i;
SELECT is((SELECT count(*)::int FROM (
	SELECT g, avg(a::codevec) AS ours FROM aggin GROUP BY g) o
	JOIN (SELECT g, array_agg(m ORDER BY k)::real[] AS ref FROM (
	      SELECT g, k, avg(x::float8) AS m FROM aggin, unnest(a) WITH ORDINALITY u(x, k) GROUP BY g, k) s GROUP BY g) r USING (g)
	WHERE ours::real[] IS DISTINCT FROM ref), 0, 'avg(codevec) equals per-element float8 avg rounded to real');
SELECT is((SELECT count(*)::int FROM (
	SELECT g, sum(a::codevec) AS ours FROM aggin GROUP BY g) o
	JOIN (SELECT g, array_agg(m ORDER BY k)::real[] AS ref FROM (
	      SELECT g, k, sum(x::float8) AS m FROM aggin, unnest(a) WITH ORDINALITY u(x, k) GROUP BY g, k) s GROUP BY g) r USING (g)
	WHERE ours::real[] IS DISTINCT FROM ref), 0, 'sum(codevec) equals per-element float8 sum rounded to real');

-- exact k-NN by sequential scan: same ids, same order as a full sort by the
-- float8 distance computed in SQL (random data: no near-ties at the top)
CREATE TEMP TABLE corpus AS
SELECT i AS id, (SELECT array_agg(random()::real) FROM generate_series(1, 64) WHERE i > 0) AS a
FROM generate_series(1, 3000) i;
ALTER TABLE corpus ADD COLUMN emb codevec(64);
UPDATE corpus SET emb = a;
CREATE TEMP TABLE queries AS SELECT id AS qid, a AS qa, emb AS q FROM corpus WHERE id % 300 = 1;
CREATE FUNCTION pg_temp.knn_mismatches(metric text) RETURNS int LANGUAGE plpgsql AS $$
DECLARE bad int := 0; r record; ours int[]; theirs int[];
BEGIN
	FOR r IN SELECT * FROM queries LOOP
		EXECUTE format('SELECT array_agg(id) FROM (SELECT id FROM corpus ORDER BY emb %s $1, id LIMIT 10) s',
		               CASE metric WHEN 'l2' THEN '<->' WHEN 'ip' THEN '<#>' ELSE '<=>' END)
			INTO ours USING r.q;
		SELECT array_agg(id) INTO theirs FROM (
			SELECT c.id FROM corpus c,
			LATERAL (SELECT sqrt(sum((x::float8 - y::float8) ^ 2)) AS l2, -sum(x::float8 * y::float8) AS nip,
			                1 - sum(x::float8 * y::float8) / (sqrt(sum(x::float8 ^ 2)) * sqrt(sum(y::float8 ^ 2))) AS cos
			         FROM unnest(c.a, r.qa) u(x, y)) d
			ORDER BY CASE metric WHEN 'l2' THEN d.l2 WHEN 'ip' THEN d.nip ELSE d.cos END, c.id LIMIT 10) s;
		IF ours IS DISTINCT FROM theirs THEN bad := bad + 1; END IF;
	END LOOP;
	RETURN bad;
END $$;
SELECT is(pg_temp.knn_mismatches('l2'), 0, 'ORDER BY <-> LIMIT 10 returns the reference top 10 (L2)');
SELECT is(pg_temp.knn_mismatches('ip'), 0, 'ORDER BY <#> LIMIT 10 returns the reference top 10 (inner product)');
SELECT is(pg_temp.knn_mismatches('cos'), 0, 'ORDER BY <=> LIMIT 10 returns the reference top 10 (cosine)');
SELECT is((SELECT id FROM corpus, queries WHERE qid = 1 ORDER BY emb <-> q LIMIT 1), 1, 'a stored vector is its own nearest neighbour');

-- text and array round trips keep every bit
SELECT is((SELECT count(*)::int FROM ref WHERE va::text::codevec::real[] IS DISTINCT FROM a), 0, 'text round trip keeps every element');
SELECT is((SELECT count(*)::int FROM ref WHERE float4send(a[1]) IS DISTINCT FROM float4send((va::real[])[1])), 0, 'cast to real[] keeps the bits');

-- the same results with every CPU kernel variant this machine supports
CREATE FUNCTION pg_temp.kernel_spread() RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE k text; worst float8 := 0; e float8;
BEGIN
	FOREACH k IN ARRAY ARRAY['scalar', 'avx2', 'avx512'] LOOP
		BEGIN
			PERFORM set_config('codevec.cpu_kernels', k, true);
		EXCEPTION WHEN invalid_parameter_value THEN CONTINUE;
		END;
		SELECT max(abs((va <-> vb) - l2) / (l2 + 1e-6)) INTO e FROM ref;
		worst := greatest(worst, e);
	END LOOP;
	PERFORM set_config('codevec.cpu_kernels', 'auto', true);
	RETURN worst;
END $$;
SELECT cmp_ok(pg_temp.kernel_spread(), '<', 1e-5::float8, 'every kernel variant stays within 1e-5 of the float8 reference');

-- errors carry their SQLSTATE
SELECT throws_ok($$SELECT '[1,2]'::codevec <-> '[1,2,3]'$$, '22000');
SELECT throws_ok($$SELECT '[1,x]'::codevec$$, '22P02');

SELECT * FROM finish();
ROLLBACK;
