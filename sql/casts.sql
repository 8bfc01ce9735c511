-- casts between codevec and arrays
SELECT ARRAY[1,2,3]::codevec;
SELECT ARRAY[1.5,2.25,3]::real[]::codevec;
SELECT ARRAY[1.5,2.25,3]::double precision[]::codevec;
SELECT ARRAY[1.5,2.25,3]::numeric[]::codevec;
SELECT ARRAY[0.1]::double precision[]::codevec;
SELECT '[1,2,3]'::codevec::real[];
SELECT ARRAY[1,2,3]::codevec(3);
SELECT ARRAY[1,2,3]::codevec(2);
SELECT '{}'::real[]::codevec;
SELECT ARRAY[1,NULL,3]::real[]::codevec;
SELECT ARRAY[[1,2],[3,4]]::real[]::codevec;
SELECT ARRAY['NaN']::real[]::codevec;
SELECT ARRAY['Infinity']::double precision[]::codevec;
SELECT ARRAY[1e300]::double precision[]::codevec;
SELECT ARRAY[1e300]::numeric[]::codevec;
SELECT ARRAY[1e-300]::numeric[]::codevec;
SELECT array_fill(1::real, ARRAY[16001])::codevec;
-- assignment casts into a table column
CREATE TABLE t_casts (v codevec(2));
INSERT INTO t_casts VALUES (ARRAY[1,2]), (ARRAY[0.5,1.5]::real[]), ('{3,4}'::float8[]);
SELECT v, v::real[] FROM t_casts ORDER BY 1;
DROP TABLE t_casts;
-- round trip through real[] keeps every bit
SELECT count(*) AS mismatches FROM (
	SELECT ARRAY[(random() * 1e6)::real, (random() * 1e-6)::real, -(random())::real] AS a
	FROM generate_series(1, 5000)
) s WHERE a::codevec::real[] <> a;
