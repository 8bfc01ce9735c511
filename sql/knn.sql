-- exact k-nearest search by sequential scan: ORDER BY emb <op> q LIMIT k
CREATE TABLE items (id int PRIMARY KEY, emb codevec(3));
INSERT INTO items VALUES
	(1, '[1,0,0]'), (2, '[0,1,0]'), (3, '[0,0,1]'), (4, '[1,1,0]'), (5, '[1,1,1]'),
	(6, '[-1,0,0]'), (7, '[0.9,0.1,0]'), (8, '[2,0,0]'), (9, '[0,0,0]');
SELECT id, emb <=> '[1,0,0]' AS d FROM items ORDER BY emb <=> '[1,0,0]', id LIMIT 4;
SELECT id, emb <-> '[1,0,0]' AS d FROM items ORDER BY emb <-> '[1,0,0]', id LIMIT 4;
SELECT id, emb <#> '[1,0,0]' AS d FROM items ORDER BY emb <#> '[1,0,0]', id LIMIT 4;
SELECT id, emb <+> '[1,0,0]' AS d FROM items ORDER BY emb <+> '[1,0,0]', id LIMIT 4;
-- the zero vector has NaN cosine distance: it sorts last
SELECT id FROM items ORDER BY emb <=> '[1,0,0]', id DESC LIMIT 1 OFFSET 8;
EXPLAIN (COSTS OFF) SELECT id FROM items ORDER BY emb <-> '[1,0,0]' LIMIT 3;
-- top-k by LIMIT equals the head of a full sort computed from real[] in SQL
CREATE TABLE big AS
SELECT i AS id, (SELECT array_agg(random())::real[] FROM generate_series(1, 48) WHERE i > 0)::codevec(48) AS emb
FROM generate_series(1, 5000) i;
CREATE TEMP TABLE q AS SELECT emb FROM big WHERE id = 17;
SELECT array_agg(id) = (
	SELECT array_agg(id) FROM (
		SELECT b.id FROM big b, q,
		LATERAL (SELECT sqrt(sum((x - y) ^ 2)) AS d FROM unnest(b.emb::real[], q.emb::real[]) u(x, y)) r
		ORDER BY r.d, b.id LIMIT 10) s
) AS same_as_reference
FROM (SELECT b.id FROM big b, q ORDER BY b.emb <-> q.emb, b.id LIMIT 10) t;
-- with a filter, LIMIT k still returns k rows in distance order
SELECT count(*) FROM (SELECT id FROM big, q WHERE id % 3 = 0 ORDER BY big.emb <=> q.emb LIMIT 10) s;
DROP TABLE items, big;
