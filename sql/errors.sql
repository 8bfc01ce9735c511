-- every bad input is an ERROR with a SQLSTATE, never a crash
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || SQLERRM;
END $$;
-- malformed text: 22P02
SELECT pg_temp.err(q) FROM (VALUES
	($$SELECT ''::codevec$$),
	($$SELECT '1,2'::codevec$$),
	($$SELECT '[1,2'::codevec$$),
	($$SELECT '[1,,2]'::codevec$$),
	($$SELECT '[1,2,]'::codevec$$),
	($$SELECT '[,1]'::codevec$$),
	($$SELECT '[1 2]'::codevec$$),
	($$SELECT '[a]'::codevec$$),
	($$SELECT '[1]x'::codevec$$),
	($$SELECT '[1][2]'::codevec$$),
	($$SELECT '[1;2]'::codevec$$),
	($$SELECT '(1,2)'::codevec$$),
	($$SELECT '[--1]'::codevec$$),
	($$SELECT '[1e]'::codevec$$)
) t(q);
-- NaN, infinity, empty, out of range: 22000 / 22003
SELECT pg_temp.err(q) FROM (VALUES
	($$SELECT '[NaN]'::codevec$$),
	($$SELECT '[1,nan]'::codevec$$),
	($$SELECT '[Infinity]'::codevec$$),
	($$SELECT '[1,2,-inf]'::codevec$$),
	($$SELECT '[]'::codevec$$),
	($$SELECT '[ ]'::codevec$$),
	($$SELECT '[1e39]'::codevec$$),
	($$SELECT '[-1e39]'::codevec$$),
	($$SELECT '[1e-50]'::codevec$$)
) t(q);
-- too many dimensions: 54000; bad typmod: 22023
SELECT pg_temp.err($$SELECT ('[' || repeat('1,', 16000) || '1]')::codevec$$);
SELECT pg_temp.err($$SELECT array_fill(0::real, ARRAY[16001])::codevec$$);
SELECT pg_temp.err($$SELECT '[1]'::codevec(0)$$);
SELECT pg_temp.err($$SELECT '[1]'::codevec(-5)$$);
SELECT pg_temp.err($$SELECT '[1]'::codevec(16001)$$);
SELECT pg_temp.err($$SELECT '[1]'::codevec(1, 2)$$);
-- wrong dimensions: 22000
SELECT pg_temp.err(q) FROM (VALUES
	($$SELECT '[1,2]'::codevec(3)$$),
	($$SELECT '[1,2]'::codevec <-> '[1,2,3]'$$),
	($$SELECT '[1,2]'::codevec <#> '[1,2,3]'$$),
	($$SELECT '[1,2]'::codevec <=> '[1,2,3]'$$),
	($$SELECT '[1,2]'::codevec <+> '[1,2,3]'$$),
	($$SELECT l2_squared_distance('[1,2]', '[1]')$$),
	($$SELECT inner_product('[1,2]', '[1]')$$),
	($$SELECT '[1,2]'::codevec + '[1]'$$),
	($$SELECT '[1,2]'::codevec - '[1]'$$),
	($$SELECT '[1,2]'::codevec * '[1]'$$)
) t(q);
-- arrays: 22004 NULL element, 22000 multi-dimensional or empty, 22003 overflow
SELECT pg_temp.err(q) FROM (VALUES
	($$SELECT ARRAY[1,NULL]::int[]::codevec$$),
	($$SELECT ARRAY[[1,2],[3,4]]::int[]::codevec$$),
	($$SELECT '{}'::int[]::codevec$$),
	($$SELECT ARRAY[1e300]::float8[]::codevec$$),
	($$SELECT ARRAY['-Infinity']::float8[]::codevec$$)
) t(q);
-- arithmetic overflow: 22003
SELECT pg_temp.err($$SELECT '[3e38]'::codevec + '[3e38]'$$);
SELECT pg_temp.err($$SELECT '[3e38]'::codevec * '[10]'$$);
-- the message says where: error text with its detail
\set VERBOSITY default
SELECT '[1,2,x]'::codevec;
SELECT '[1,NaN,3]'::codevec;
SELECT '[1,2,3'::codevec;
SELECT '[1,2]'::codevec <=> '[1,2,3]';
-- STRICT: NULL in, NULL out
SELECT l2_distance(NULL, '[1]') IS NULL AS l2, cosine_distance('[1]', NULL) IS NULL AS cos,
       codevec_norm(NULL) IS NULL AS norm, ('[1]'::codevec <-> NULL) IS NULL AS op;
