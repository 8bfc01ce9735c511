-- codevec_pgvector 0.1.0: the exact gpuivf index on pgvector's own columns.
-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION codevec_pgvector" to load this file. \quit

-------------------------------------------------------------------------------
-- gpuivf operator classes for vector, named as pgvector's HNSW and IVFFlat
-- ones: CREATE INDEX ON items USING gpuivf (embedding vector_cosine_ops).
-- Support function 1 is pgvector's own function behind the operator, so an
-- index scan returns the values (and the order, ties by heap TID) of a
-- sequential scan ORDER BY embedding <op> q.
-------------------------------------------------------------------------------

CREATE OPERATOR CLASS vector_cosine_ops
	FOR TYPE vector USING gpuivf AS
	OPERATOR 1 <=> (vector, vector) FOR ORDER BY float_ops,
	FUNCTION 1 cosine_distance(vector, vector);
CREATE OPERATOR CLASS vector_l2_ops
	FOR TYPE vector USING gpuivf AS
	OPERATOR 1 <-> (vector, vector) FOR ORDER BY float_ops,
	FUNCTION 1 l2_distance(vector, vector);
CREATE OPERATOR CLASS vector_ip_ops
	FOR TYPE vector USING gpuivf AS
	OPERATOR 1 <#> (vector, vector) FOR ORDER BY float_ops,
	FUNCTION 1 vector_negative_inner_product(vector, vector);

COMMENT ON OPERATOR CLASS vector_cosine_ops USING gpuivf IS
'gpuivf ordering of a pgvector vector column by cosine distance <=> (pgvector''s cosine_distance; exact with lists = 1)';
COMMENT ON OPERATOR CLASS vector_l2_ops USING gpuivf IS
'gpuivf ordering of a pgvector vector column by Euclidean distance <-> (pgvector''s l2_distance; exact with lists = 1)';
COMMENT ON OPERATOR CLASS vector_ip_ops USING gpuivf IS
'gpuivf ordering of a pgvector vector column by negative inner product <#> (pgvector''s vector_negative_inner_product; exact with lists = 1)';

-- halfvec: the index stores the rows as they are stored in the table
-- (binary16); gpuivf reads them as float4 (exact) for its k-means, its
-- lists and the GPU copy, and hands pgvector's halfvec functions the
-- stored bits (src/vecelem.h).
CREATE OPERATOR CLASS halfvec_cosine_ops
	FOR TYPE halfvec USING gpuivf AS
	OPERATOR 1 <=> (halfvec, halfvec) FOR ORDER BY float_ops,
	FUNCTION 1 cosine_distance(halfvec, halfvec);
CREATE OPERATOR CLASS halfvec_l2_ops
	FOR TYPE halfvec USING gpuivf AS
	OPERATOR 1 <-> (halfvec, halfvec) FOR ORDER BY float_ops,
	FUNCTION 1 l2_distance(halfvec, halfvec);
CREATE OPERATOR CLASS halfvec_ip_ops
	FOR TYPE halfvec USING gpuivf AS
	OPERATOR 1 <#> (halfvec, halfvec) FOR ORDER BY float_ops,
	FUNCTION 1 halfvec_negative_inner_product(halfvec, halfvec);

COMMENT ON OPERATOR CLASS halfvec_cosine_ops USING gpuivf IS
'gpuivf ordering of a pgvector halfvec column by cosine distance <=> (pgvector''s cosine_distance; exact with lists = 1)';
COMMENT ON OPERATOR CLASS halfvec_l2_ops USING gpuivf IS
'gpuivf ordering of a pgvector halfvec column by Euclidean distance <-> (pgvector''s l2_distance; exact with lists = 1)';
COMMENT ON OPERATOR CLASS halfvec_ip_ops USING gpuivf IS
'gpuivf ordering of a pgvector halfvec column by negative inner product <#> (pgvector''s halfvec_negative_inner_product; exact with lists = 1)';

-------------------------------------------------------------------------------
-- Casts. codevec and vector have the same varlena layout (int16 dim, int16
-- unused, float4 x[dim]), so the casts are binary coercible: no copy, bit
-- for bit. Both are assignment casts: INSERT INTO items (embedding) SELECT
-- embed(body) works, and an expression that mixes the two types names the
-- cast (embedding <=> embed('q')::vector), so no operator is ambiguous.
-- codevec refuses NaN and infinite elements and pgvector does too, so every
-- value of one is a valid value of the other.
-------------------------------------------------------------------------------

CREATE CAST (codevec AS vector) WITHOUT FUNCTION AS ASSIGNMENT;
CREATE CAST (vector AS codevec) WITHOUT FUNCTION AS ASSIGNMENT;

COMMENT ON CAST (codevec AS vector) IS
'binary coercible (same layout): embed() output stored in a pgvector column, bit for bit';
COMMENT ON CAST (vector AS codevec) IS
'binary coercible (same layout): a pgvector value as codevec, bit for bit';

-- halfvec: not the same layout, so through pgvector's own conversions.
-- halfvec -> codevec is exact (every binary16 is a float4); codevec ->
-- halfvec rounds to nearest as pgvector's vector -> halfvec does (and
-- raises its error past 65504), so embed() can fill a halfvec column.
CREATE FUNCTION codevec_to_halfvec(codevec) RETURNS halfvec
	AS 'SELECT $1::vector::halfvec' LANGUAGE SQL IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION halfvec_to_codevec(halfvec) RETURNS codevec
	AS 'SELECT $1::vector::codevec' LANGUAGE SQL IMMUTABLE STRICT PARALLEL SAFE;
CREATE CAST (codevec AS halfvec) WITH FUNCTION codevec_to_halfvec(codevec) AS ASSIGNMENT;
CREATE CAST (halfvec AS codevec) WITH FUNCTION halfvec_to_codevec(halfvec) AS ASSIGNMENT;

COMMENT ON FUNCTION codevec_to_halfvec(codevec) IS
'codevec as pgvector halfvec: each element rounded to the nearest binary16 (pgvector''s vector -> halfvec); error past 65504';
COMMENT ON FUNCTION halfvec_to_codevec(halfvec) IS
'pgvector halfvec as codevec: exact (every binary16 value is a float4)';
COMMENT ON CAST (codevec AS halfvec) IS
'rounds each element to binary16 (codevec_to_halfvec): embed() output stored in a halfvec column';
COMMENT ON CAST (halfvec AS codevec) IS
'exact (halfvec_to_codevec)';
