-- Text and binary I/O of codevec
SELECT '[1,2,3]'::codevec;
SELECT '[1, 2.5, -3e-2]'::codevec;
SELECT '  [ 1 ,	2 ,3 ]  '::codevec;
SELECT E'[\n1,\n2\n]'::codevec;
SELECT '[-0]'::codevec, '[0]'::codevec;
SELECT '[1e-45]'::codevec AS smallest_subnormal, '[3.4028235e38]'::codevec AS largest;
SELECT '[0.1, 0.2, 0.3]'::codevec;
SELECT '[1.0000001, 16777217, 3.14159265358979]'::codevec;
SELECT '[0x1p-3]'::codevec AS hex_float;

-- every float4 survives text I/O bit for bit (values over the whole exponent
-- range; test/c/vector_test.c checks random bit patterns exhaustively)
WITH v AS (
	SELECT ((random() * 2 - 1) * 10 ^ (random() * 76 - 38))::real AS x
	FROM generate_series(1, 20000)
)
SELECT count(*) AS mismatches
FROM v
WHERE float4send((('[' || x::text || ']')::codevec::real[])[1]) <> float4send(x)
   OR float4send(((('[' || x::text || ']')::codevec)::text::codevec::real[])[1]) <> float4send(x);

-- binary send/recv round trip, through the type's own functions
SELECT codevec_send('[1,2,3]'::codevec);
SELECT codevec_send('[-1.5]'::codevec);
CREATE TABLE t_io (v codevec(3));
INSERT INTO t_io VALUES ('[1,2,3]'), ('[-0.5, 1e-30, 7e30]');
COPY t_io TO '/tmp/codevec_io.bin' WITH (FORMAT binary);
CREATE TABLE t_io2 (v codevec(3));
COPY t_io2 FROM '/tmp/codevec_io.bin' WITH (FORMAT binary);
SELECT a.v, a.v = b.v AS same FROM t_io a JOIN t_io2 b ON a.v = b.v ORDER BY a.v;
-- recv enforces the column typmod
CREATE TABLE t_io4 (v codevec(4));
COPY t_io4 FROM '/tmp/codevec_io.bin' WITH (FORMAT binary);
DROP TABLE t_io, t_io2, t_io4;

-- large vectors
SELECT codevec_dims(array_fill(1.5::real, ARRAY[16000])::codevec);
SELECT codevec_dims((('[' || repeat('1,', 15999) || '1]')::codevec));
