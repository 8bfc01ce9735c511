/* codevec--0.1.0.sql: the codevec type, distances, aggregates */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION codevec" to load this file. \quit

-------------------------------------------------------------------------------
-- The type
-------------------------------------------------------------------------------

CREATE TYPE codevec;

CREATE FUNCTION codevec_in(cstring, oid, integer) RETURNS codevec
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_out(codevec) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_typmod_in(cstring[]) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_typmod_out(integer) RETURNS cstring
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_recv(internal, oid, integer) RETURNS codevec
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_send(codevec) RETURNS bytea
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

CREATE TYPE codevec (
	INPUT     = codevec_in,
	OUTPUT    = codevec_out,
	TYPMOD_IN = codevec_typmod_in,
	TYPMOD_OUT = codevec_typmod_out,
	RECEIVE   = codevec_recv,
	SEND      = codevec_send,
	STORAGE   = external
);

COMMENT ON TYPE codevec IS
'dense vector of float4 (real) elements, 1 to 16000 dimensions, no NaN or infinity; text form ''[1, 2.5, -3e-2]''; codevec(n) fixes the dimension count';
COMMENT ON FUNCTION codevec_in(cstring, oid, integer) IS
'parse ''[x1, x2, ...]'' (whitespace allowed); errors: 22P02 malformed, 22000 NaN/infinite/empty/wrong dimensions, 22003 element out of real range, 54000 more than 16000 elements';
COMMENT ON FUNCTION codevec_out(codevec) IS
'print ''[x1,x2,...]'' with the shortest decimal that reads back to the same float4';
COMMENT ON FUNCTION codevec_typmod_in(cstring[]) IS
'typmod of codevec(n): n in 1..16000, otherwise 22023';
COMMENT ON FUNCTION codevec_typmod_out(integer) IS
'print a codevec typmod as (n)';
COMMENT ON FUNCTION codevec_recv(internal, oid, integer) IS
'binary input: int16 dim, int16 reserved (0), dim float4 in network byte order; validated like text input (22P03 for a malformed message)';
COMMENT ON FUNCTION codevec_send(codevec) IS
'binary output read by codevec_recv';

-------------------------------------------------------------------------------
-- Typmod coercion and casts
-------------------------------------------------------------------------------

CREATE FUNCTION codevec(codevec, integer, boolean) RETURNS codevec
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION codevec(codevec, integer, boolean) IS
'length coercion to codevec(n): 22000 when the value has another dimension count';

CREATE FUNCTION array_to_codevec(integer[], integer, boolean) RETURNS codevec
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_codevec(real[], integer, boolean) RETURNS codevec
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_codevec(double precision[], integer, boolean) RETURNS codevec
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION array_to_codevec(numeric[], integer, boolean) RETURNS codevec
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_to_float4(codevec, integer, boolean) RETURNS real[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION array_to_codevec(integer[], integer, boolean) IS
'cast a 1-D integer[] without NULLs to codevec(n) (22004 for a NULL element, 22000 for a wrong length)';
COMMENT ON FUNCTION array_to_codevec(real[], integer, boolean) IS
'cast a 1-D real[] without NULLs or NaN/infinity to codevec(n)';
COMMENT ON FUNCTION array_to_codevec(double precision[], integer, boolean) IS
'cast a 1-D double precision[] to codevec(n), rounding to float4; 22003 beyond the real range';
COMMENT ON FUNCTION array_to_codevec(numeric[], integer, boolean) IS
'cast a 1-D numeric[] to codevec(n), rounding to float4';
COMMENT ON FUNCTION codevec_to_float4(codevec, integer, boolean) IS
'cast a codevec to real[] with the same elements';

CREATE CAST (codevec AS codevec)
	WITH FUNCTION codevec(codevec, integer, boolean) AS IMPLICIT;
CREATE CAST (integer[] AS codevec)
	WITH FUNCTION array_to_codevec(integer[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (real[] AS codevec)
	WITH FUNCTION array_to_codevec(real[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (double precision[] AS codevec)
	WITH FUNCTION array_to_codevec(double precision[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (numeric[] AS codevec)
	WITH FUNCTION array_to_codevec(numeric[], integer, boolean) AS ASSIGNMENT;
CREATE CAST (codevec AS real[])
	WITH FUNCTION codevec_to_float4(codevec, integer, boolean) AS ASSIGNMENT;

-------------------------------------------------------------------------------
-- Distances
-------------------------------------------------------------------------------

CREATE FUNCTION l2_distance(codevec, codevec) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION l2_squared_distance(codevec, codevec) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION inner_product(codevec, codevec) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION negative_inner_product(codevec, codevec) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION cosine_distance(codevec, codevec) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION l1_distance(codevec, codevec) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION l2_distance(codevec, codevec) IS
'Euclidean distance sqrt(sum (a_i - b_i)^2), float32 accumulation; operator <->; 22000 when dimensions differ';
COMMENT ON FUNCTION l2_squared_distance(codevec, codevec) IS
'squared Euclidean distance sum (a_i - b_i)^2 (orders like l2_distance, no square root); 22000 when dimensions differ';
COMMENT ON FUNCTION inner_product(codevec, codevec) IS
'inner product sum a_i * b_i, float32 accumulation; 22000 when dimensions differ';
COMMENT ON FUNCTION negative_inner_product(codevec, codevec) IS
'negative inner product -(sum a_i * b_i), so that smaller is closer; operator <#>; 22000 when dimensions differ';
COMMENT ON FUNCTION cosine_distance(codevec, codevec) IS
'cosine distance 1 - a.b / (|a| |b|) in [0, 2]; NaN when either vector is all zeros; operator <=>; 22000 when dimensions differ';
COMMENT ON FUNCTION l1_distance(codevec, codevec) IS
'taxicab distance sum |a_i - b_i|; operator <+>; 22000 when dimensions differ';

CREATE OPERATOR <-> (
	LEFTARG = codevec, RIGHTARG = codevec, FUNCTION = l2_distance,
	COMMUTATOR = '<->'
);
CREATE OPERATOR <#> (
	LEFTARG = codevec, RIGHTARG = codevec, FUNCTION = negative_inner_product,
	COMMUTATOR = '<#>'
);
CREATE OPERATOR <=> (
	LEFTARG = codevec, RIGHTARG = codevec, FUNCTION = cosine_distance,
	COMMUTATOR = '<=>'
);
CREATE OPERATOR <+> (
	LEFTARG = codevec, RIGHTARG = codevec, FUNCTION = l1_distance,
	COMMUTATOR = '<+>'
);
COMMENT ON OPERATOR <->(codevec, codevec) IS 'Euclidean (L2) distance';
COMMENT ON OPERATOR <#>(codevec, codevec) IS 'negative inner product';
COMMENT ON OPERATOR <=>(codevec, codevec) IS 'cosine distance';
COMMENT ON OPERATOR <+>(codevec, codevec) IS 'taxicab (L1) distance';

-------------------------------------------------------------------------------
-- Norms and element-wise arithmetic
-------------------------------------------------------------------------------

CREATE FUNCTION codevec_dims(codevec) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_norm(codevec) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION l2_normalize(codevec) RETURNS codevec
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION codevec_dims(codevec) IS 'number of dimensions';
COMMENT ON FUNCTION codevec_norm(codevec) IS 'Euclidean norm, accumulated in float8';
COMMENT ON FUNCTION l2_normalize(codevec) IS
'the vector divided by its Euclidean norm; an all-zero vector is returned unchanged';

CREATE FUNCTION codevec_add(codevec, codevec) RETURNS codevec
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_sub(codevec, codevec) RETURNS codevec
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_mul(codevec, codevec) RETURNS codevec
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION codevec_add(codevec, codevec) IS
'element-wise sum; 22000 when dimensions differ, 22003 on float4 overflow';
COMMENT ON FUNCTION codevec_sub(codevec, codevec) IS
'element-wise difference; 22000 when dimensions differ, 22003 on float4 overflow';
COMMENT ON FUNCTION codevec_mul(codevec, codevec) IS
'element-wise product; 22000 when dimensions differ, 22003 on float4 overflow';

CREATE OPERATOR + (
	LEFTARG = codevec, RIGHTARG = codevec, FUNCTION = codevec_add, COMMUTATOR = +
);
CREATE OPERATOR - (
	LEFTARG = codevec, RIGHTARG = codevec, FUNCTION = codevec_sub
);
CREATE OPERATOR * (
	LEFTARG = codevec, RIGHTARG = codevec, FUNCTION = codevec_mul, COMMUTATOR = *
);
COMMENT ON OPERATOR +(codevec, codevec) IS 'element-wise sum';
COMMENT ON OPERATOR -(codevec, codevec) IS 'element-wise difference';
COMMENT ON OPERATOR *(codevec, codevec) IS 'element-wise product';

-------------------------------------------------------------------------------
-- Comparison: btree, so DISTINCT, GROUP BY, ORDER BY and UNIQUE work
-------------------------------------------------------------------------------

CREATE FUNCTION codevec_lt(codevec, codevec) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_le(codevec, codevec) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_eq(codevec, codevec) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_ne(codevec, codevec) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_ge(codevec, codevec) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_gt(codevec, codevec) RETURNS bool
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_cmp(codevec, codevec) RETURNS integer
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

COMMENT ON FUNCTION codevec_cmp(codevec, codevec) IS
'btree support: -1, 0, 1 comparing element by element, then the shorter vector first';
COMMENT ON FUNCTION codevec_lt(codevec, codevec) IS 'lexicographic a < b (see codevec_cmp)';
COMMENT ON FUNCTION codevec_le(codevec, codevec) IS 'lexicographic a <= b (see codevec_cmp)';
COMMENT ON FUNCTION codevec_eq(codevec, codevec) IS 'same dimensions and equal elements (-0 = 0)';
COMMENT ON FUNCTION codevec_ne(codevec, codevec) IS 'not codevec_eq';
COMMENT ON FUNCTION codevec_ge(codevec, codevec) IS 'lexicographic a >= b (see codevec_cmp)';
COMMENT ON FUNCTION codevec_gt(codevec, codevec) IS 'lexicographic a > b (see codevec_cmp)';

CREATE OPERATOR < (
	LEFTARG = codevec, RIGHTARG = codevec, PROCEDURE = codevec_lt,
	COMMUTATOR = > , NEGATOR = >= ,
	RESTRICT = scalarltsel, JOIN = scalarltjoinsel
);
CREATE OPERATOR <= (
	LEFTARG = codevec, RIGHTARG = codevec, PROCEDURE = codevec_le,
	COMMUTATOR = >= , NEGATOR = > ,
	RESTRICT = scalarlesel, JOIN = scalarlejoinsel
);
CREATE OPERATOR = (
	LEFTARG = codevec, RIGHTARG = codevec, PROCEDURE = codevec_eq,
	COMMUTATOR = = , NEGATOR = <> ,
	RESTRICT = eqsel, JOIN = eqjoinsel
);
CREATE OPERATOR <> (
	LEFTARG = codevec, RIGHTARG = codevec, PROCEDURE = codevec_ne,
	COMMUTATOR = <> , NEGATOR = = ,
	RESTRICT = neqsel, JOIN = neqjoinsel
);
CREATE OPERATOR >= (
	LEFTARG = codevec, RIGHTARG = codevec, PROCEDURE = codevec_ge,
	COMMUTATOR = <= , NEGATOR = < ,
	RESTRICT = scalargesel, JOIN = scalargejoinsel
);
CREATE OPERATOR > (
	LEFTARG = codevec, RIGHTARG = codevec, PROCEDURE = codevec_gt,
	COMMUTATOR = < , NEGATOR = <= ,
	RESTRICT = scalargtsel, JOIN = scalargtjoinsel
);
COMMENT ON OPERATOR <(codevec, codevec) IS 'lexicographic less than';
COMMENT ON OPERATOR <=(codevec, codevec) IS 'lexicographic less than or equal';
COMMENT ON OPERATOR =(codevec, codevec) IS 'equal';
COMMENT ON OPERATOR <>(codevec, codevec) IS 'not equal';
COMMENT ON OPERATOR >=(codevec, codevec) IS 'lexicographic greater than or equal';
COMMENT ON OPERATOR >(codevec, codevec) IS 'lexicographic greater than';

CREATE OPERATOR CLASS codevec_ops
	DEFAULT FOR TYPE codevec USING btree AS
	OPERATOR 1 < ,
	OPERATOR 2 <= ,
	OPERATOR 3 = ,
	OPERATOR 4 >= ,
	OPERATOR 5 > ,
	FUNCTION 1 codevec_cmp(codevec, codevec);
COMMENT ON OPERATOR CLASS codevec_ops USING btree IS
'default btree ordering of codevec: element by element, then by dimension count';

-------------------------------------------------------------------------------
-- Aggregates: state is double precision[] {count, sum_1, ..., sum_d}
-------------------------------------------------------------------------------

CREATE FUNCTION codevec_accum(double precision[], codevec) RETURNS double precision[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_combine(double precision[], double precision[]) RETURNS double precision[]
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_avg(double precision[]) RETURNS codevec
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_sum(double precision[]) RETURNS codevec
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION codevec_accum(double precision[], codevec) IS
'sum/avg transition: count and float8 sums; 22000 when dimensions differ, 22003 on overflow';
COMMENT ON FUNCTION codevec_combine(double precision[], double precision[]) IS
'sum/avg combine function for parallel aggregation';
COMMENT ON FUNCTION codevec_avg(double precision[]) IS
'avg final function: sums / count rounded to float4, NULL for no rows';
COMMENT ON FUNCTION codevec_sum(double precision[]) IS
'sum final function: sums rounded to float4 (22003 beyond the real range), NULL for no rows';

CREATE AGGREGATE avg(codevec) (
	SFUNC = codevec_accum,
	STYPE = double precision[],
	FINALFUNC = codevec_avg,
	COMBINEFUNC = codevec_combine,
	INITCOND = '{0}',
	PARALLEL = SAFE
);
CREATE AGGREGATE sum(codevec) (
	SFUNC = codevec_accum,
	STYPE = double precision[],
	FINALFUNC = codevec_sum,
	COMBINEFUNC = codevec_combine,
	INITCOND = '{0}',
	PARALLEL = SAFE
);
COMMENT ON AGGREGATE avg(codevec) IS
'element-wise mean (centroid), accumulated in float8; parallel safe';
COMMENT ON AGGREGATE sum(codevec) IS
'element-wise sum, accumulated in float8; parallel safe';

-------------------------------------------------------------------------------
-- The gpuivf index access method
-------------------------------------------------------------------------------

CREATE FUNCTION gpuivfhandler(internal) RETURNS index_am_handler
	AS 'MODULE_PATHNAME' LANGUAGE C;
COMMENT ON FUNCTION gpuivfhandler(internal) IS
'index access method handler of gpuivf';

CREATE ACCESS METHOD gpuivf TYPE INDEX HANDLER gpuivfhandler;
COMMENT ON ACCESS METHOD gpuivf IS
'k-nearest-neighbour index for ORDER BY emb <op> q LIMIT k: WITH (lists = 1), the default, is exact (the same rows and order as a sequential scan, ties by ctid); lists > 1 is IVF (k-means lists, GUC gpuivf.probes)';

CREATE OPERATOR CLASS codevec_cosine_ops
	DEFAULT FOR TYPE codevec USING gpuivf AS
	OPERATOR 1 <=> (codevec, codevec) FOR ORDER BY float_ops,
	FUNCTION 1 cosine_distance(codevec, codevec);
CREATE OPERATOR CLASS codevec_l2_ops
	FOR TYPE codevec USING gpuivf AS
	OPERATOR 1 <-> (codevec, codevec) FOR ORDER BY float_ops,
	FUNCTION 1 l2_distance(codevec, codevec);
CREATE OPERATOR CLASS codevec_ip_ops
	FOR TYPE codevec USING gpuivf AS
	OPERATOR 1 <#> (codevec, codevec) FOR ORDER BY float_ops,
	FUNCTION 1 negative_inner_product(codevec, codevec);
COMMENT ON OPERATOR CLASS codevec_cosine_ops USING gpuivf IS
'gpuivf ordering by cosine distance <=> (the default opclass; spherical k-means for lists > 1)';
COMMENT ON OPERATOR CLASS codevec_l2_ops USING gpuivf IS
'gpuivf ordering by Euclidean distance <->';
COMMENT ON OPERATOR CLASS codevec_ip_ops USING gpuivf IS
'gpuivf ordering by negative inner product <#>';

-------------------------------------------------------------------------------
-- The GPU service
-------------------------------------------------------------------------------

CREATE FUNCTION codevec_gpu_status(
	OUT state text,
	OUT pid integer,
	OUT generation bigint,
	OUT device text,
	OUT memory_used_mb bigint,
	OUT memory_total_mb bigint,
	OUT models_loaded integer,
	OUT indexes_loaded integer,
	OUT requests bigint,
	OUT batches bigint,
	OUT mean_batch double precision,
	OUT latency_p50_us double precision,
	OUT latency_p99_us double precision,
	OUT max_batch integer,
	OUT message text)
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION codevec_gpu_status() IS
'the GPU service (a background worker when codevec is in shared_preload_libraries): state (absent, starting, ready, no device, stopped), pid, generation (bumped at each restart), device name, device memory used and total (MB), models and index copies on the device, requests served, launches (batches), mean and largest batch, request latency p50/p99 in microseconds (histogram bucket bounds, from posting to answer), and why there is no device';

CREATE FUNCTION codevec_gpu_ping(n integer DEFAULT 1) RETURNS double precision
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION codevec_gpu_ping(integer) IS
'send n empty requests to the GPU service one after another and return the mean round trip in microseconds (shared memory, latches and the batching window; no GPU work); works without a GPU; 55000 when the service is not running, 22023 for n outside 1..1000000';
CREATE FUNCTION codevec_gpu_autotune(dims integer DEFAULT 384) RETURNS text
	AS 'MODULE_PATHNAME', 'codevec_gpu_autotune' LANGUAGE C VOLATILE STRICT PARALLEL UNSAFE;
COMMENT ON FUNCTION codevec_gpu_autotune(integer) IS
're-run the autotuning of the k-NN kernels (cuda/knn.cu) on the GPU service''s device for vectors of dims components (1..16000) and return its report: every candidate configuration measured (queries per tile, warps per block, blocks per multiprocessor, lanes per row, fp16 or fp32 storage) with its time, and the one chosen. The choice is cached per GPU model in the service and in $PGDATA/pg_codevec_cuda_tune, and used by the index copies created afterwards; it otherwise runs once, at the first use of a dims on a GPU. Takes seconds. Errors: 55000 when the service is not running or has no device, 22023 bad dims';

-------------------------------------------------------------------------------
-- Build and machine report
-------------------------------------------------------------------------------

CREATE FUNCTION codevec_build_info(
	OUT version text,
	OUT cpu_kernels text,
	OUT cuda_compiled boolean,
	OUT cuda_runtime text,
	OUT cuda_devices integer,
	OUT gpu_name text)
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION codevec_build_info() IS
'this build and machine: extension version, CPU distance kernels in use (codevec.cpu_kernels), whether CUDA was compiled in, its runtime version, CUDA devices visible to this backend and the first one''s name; VOLATILE because it asks the driver';

-------------------------------------------------------------------------------
-- embed(): tokenizer + BERT encoder (issue 4)
-------------------------------------------------------------------------------

CREATE FUNCTION embed(text) RETURNS codevec
	AS 'MODULE_PATHNAME', 'embed' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION embed(text[]) RETURNS codevec[]
	AS 'MODULE_PATHNAME', 'embed_array' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_tokenize(text) RETURNS integer[]
	AS 'MODULE_PATHNAME', 'codevec_tokenize' LANGUAGE C STABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_model_info(
	OUT name text,
	OUT dims integer,
	OUT layers integer,
	OUT heads integer,
	OUT pooling text,
	OUT normalized boolean,
	OUT max_tokens integer,
	OUT max_positions integer,
	OUT vocab_size integer,
	OUT dtype text,
	OUT source text,
	OUT sha256 text,
	OUT weight_bytes bigint,
	OUT blas text)
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL SAFE;
COMMENT ON FUNCTION embed(text) IS
'the embedding of a text by the encoder model named by codevec.model (default: the installed default model, all-MiniLM-L6-v2 after "make model"): BERT WordPiece tokens ([CLS] text [SEP], truncated to codevec.max_tokens, default 256, computed in this backend), a BERT forward pass on the GPU service when codevec.device is auto and the service is ready or cuda (fp16 weights, fp32 accumulation: cosine >= 0.9999 to the CPU result) else on this backend''s CPU (fp32), mean or CLS pooling and L2 normalisation as the model folder says; the same vector sentence-transformers gives (cosine >= 0.99999). Dimensions = the model''s hidden_size (384 for the MiniLM/bge-small/gte-small family), so vectors stored under one model must be recomputed after changing codevec.model. STABLE, not IMMUTABLE: the result depends on the codevec.model and codevec.max_tokens settings; PARALLEL SAFE: workers inherit both settings (each loads the model once). Errors: 58P01 model folder missing, XX001 corrupt model files, 0A000 unsupported config (the message names the field), 22023 codevec.max_tokens above the model''s max_position_embeddings, 55000 codevec.device = cuda and the GPU service cannot serve (with auto: one WARNING per session and the CPU), 53200 the model does not fit codevec.gpu_memory_limit under cuda; NULL gives NULL';
COMMENT ON FUNCTION codevec_tokenize(text) IS
'the token ids embed(text) feeds the encoder for a text under the current codevec.model and codevec.max_tokens: [CLS], the WordPiece ids of the text (BERT basic tokenization: lower-casing and accent stripping as the model''s tokenizer_config.json says), [SEP], truncated to codevec.max_tokens; the same ids Hugging Face tokenizers gives. For seeing what a model reads and how much is cut off (array_length(codevec_tokenize(t), 1) = codevec.max_tokens means truncated); reads only the model''s tokenizer and config, not its weights. Errors as embed(text) for the model folder';
COMMENT ON FUNCTION embed(text[]) IS
'embed(text) for every element, each element''s vector the one embed(text) gives: on the GPU service all elements go in requests of up to 4096 sequences that the service packs with other sessions'' requests, on the CPU the encoder runs groups of 32 (either way much faster than one call per row); NULL elements give NULL elements; the result keeps the input''s dimensions and bounds. STABLE and PARALLEL SAFE for the same reasons as embed(text)';
COMMENT ON FUNCTION codevec_model_info() IS
'the model embed() uses now (loading it if needed): folder name, dims (hidden_size), layers, heads, pooling (mean or cls), normalized (2_Normalize present), max_tokens (codevec.max_tokens), max_positions, vocab_size, dtype stored in model.safetensors, source folder and the sha256 of its model.safetensors, fp32 weight bytes held by this backend, and the OpenBLAS kernels and thread count the encoder runs with (OpenBLAS threads default to the cores; set OPENBLAS_NUM_THREADS in the server''s environment to change it)';

-------------------------------------------------------------------------------
-- Code-aware text search: parser codevec_code_parser, configuration
-- codevec_code (issue 7; src/tsparser.c)
-------------------------------------------------------------------------------

CREATE FUNCTION codevec_tsparser_start(internal, integer) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_tsparser_gettoken(internal, internal, internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_tsparser_end(internal) RETURNS void
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_tsparser_lextype(internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION codevec_tsparser_start(internal, integer) IS
'text search parser codevec_code_parser: start parsing len bytes of text (internal; called by to_tsvector, ts_parse and friends, not by users)';
COMMENT ON FUNCTION codevec_tsparser_gettoken(internal, internal, internal) IS
'text search parser codevec_code_parser: the next token''s type id (0 at the end) and its bytes (internal)';
COMMENT ON FUNCTION codevec_tsparser_end(internal) IS
'text search parser codevec_code_parser: free the parser state (internal)';
COMMENT ON FUNCTION codevec_tsparser_lextype(internal) IS
'text search parser codevec_code_parser: its token types (word 1, part 2, number 3, blank 12, ident 16, path 17), as ts_token_type(''codevec_code_parser'') lists them (internal)';

CREATE TEXT SEARCH PARSER codevec_code_parser (
	START = codevec_tsparser_start,
	GETTOKEN = codevec_tsparser_gettoken,
	END = codevec_tsparser_end,
	LEXTYPES = codevec_tsparser_lextype,
	HEADLINE = pg_catalog.prsd_headline);
COMMENT ON TEXT SEARCH PARSER codevec_code_parser IS
'splits source code: an identifier is emitted whole (ident) and then its parts (part), split at _, camelCase, acronyms (parseHTTPConfig: parse, HTTP, Config) and letter/digit changes; a.b, a/b, a::b and a->b chains are emitted whole (path) and then each identifier; one-part identifiers are word, digit runs number, everything else blank; non-ASCII letters belong to identifiers (camelCase by the server''s LC_CTYPE); tokens over 255 bytes are not indexed. Type ids follow the default parser where ts_headline cares, so ts_headline works';

CREATE TEXT SEARCH DICTIONARY codevec_code_simple (
	TEMPLATE = pg_catalog.simple, STOPWORDS = english);
COMMENT ON TEXT SEARCH DICTIONARY codevec_code_simple IS
'the simple dictionary (lower-cases, no stemming) with PostgreSQL''s English stop word list (english.stop: the, of, is, if, for, in, all, any ...), so that the words of a question and the keywords of code that every snippet shares do not count';

CREATE TEXT SEARCH CONFIGURATION codevec_code (PARSER = codevec_code_parser);
ALTER TEXT SEARCH CONFIGURATION codevec_code
	ADD MAPPING FOR word, part, number, ident, path WITH codevec_code_simple;
COMMENT ON TEXT SEARCH CONFIGURATION codevec_code IS
'code search: codevec_code_parser with every token type but blank mapped to codevec_code_simple (lower-cased, English stop words dropped, no stemming), so parseHTTPConfig, parse_http_config and "parse http config" share the lexemes parse, http, config; codevec-load builds code.snippets.tsv with it and code.search() its queries. Measured on 400 docstring questions over 16,442 Python standard library snippets with docs stripped (OR query, ts_rank): MRR@10 0.157 without the stop words, 0.241 with them, 0.241 with English stemming on top (not used)';

-------------------------------------------------------------------------------
-- Batch k-NN search: codevec_knn (issue 6; src/gpuivfknn.c)
--
-- Join the rows back through their TIDs (planned as a nested loop with a
-- TID Scan on the table: one heap fetch per result row):
--
--   SELECT r.query, r.rank, t.id, r.distance
--   FROM codevec_knn('t_emb_idx', ARRAY(SELECT emb FROM q ORDER BY id), 10) r
--   JOIN t ON t.ctid = r.heap_tid
--   ORDER BY r.query, r.rank;
--
-- Near-duplicate functions across a codebase: every pair of snippets at
-- cosine distance below 0.05, each snippet searched once among its 10
-- nearest (itself included), batches of 1,000 snippets per call:
--
--   WITH b AS (
--     SELECT id / 1000 AS batch, array_agg(id ORDER BY id) AS ids,
--            array_agg(emb ORDER BY id) AS embs
--     FROM code.snippets WHERE emb IS NOT NULL GROUP BY 1)
--   SELECT b.ids[r.query] AS a_id, s.id AS b_id, r.distance
--   FROM b CROSS JOIN LATERAL codevec_knn('code.snippets_emb_gpuivf', b.embs, 10) r
--   JOIN code.snippets s ON s.ctid = r.heap_tid
--   WHERE r.distance < 0.05 AND b.ids[r.query] < s.id
--   ORDER BY r.distance;
-------------------------------------------------------------------------------

CREATE FUNCTION codevec_knn_support(internal) RETURNS internal
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION codevec_knn_support(internal) IS
'planner support of codevec_knn: estimates its rows as (number of queries) x k when k is a constant and queries a constant or an ARRAY[...] expression, 100 x k when only k is (internal)';

CREATE FUNCTION codevec_knn(index regclass, queries codevec[], k integer)
	RETURNS TABLE (query integer, rank integer, heap_tid tid, distance double precision)
	AS 'MODULE_PATHNAME', 'codevec_knn' LANGUAGE C STABLE STRICT PARALLEL RESTRICTED
	ROWS 1000 SUPPORT codevec_knn_support;
COMMENT ON FUNCTION codevec_knn(regclass, codevec[], integer) IS
'batch k-nearest-neighbour search over a gpuivf index: for each element of queries (query = its 1-based position in the array, in storage order) up to k rows (rank 1..k) of the index''s table nearest to it under the index''s opclass metric (<-> l2, <#> negative inner product, <=> cosine), as heap_tid (the row''s ctid) and distance (float8, the operator''s value), ordered by query then rank. Flat index (lists = 1): exactly what SELECT ctid, emb <op> q FROM t WHERE emb IS NOT NULL ORDER BY emb <op> q, ctid LIMIT k returns, distances bit-identical; IVF (lists > 1): what an index scan with the current gpuivf.probes returns under LIMIT k. Only rows visible to the statement''s snapshot (fewer than k only when fewer exist; NULL vectors are not indexed; a partial index searches the rows it covers). One pass over the index for all queries on the CPU; a flat index routed to the GPU (codevec.device cuda, or auto with reltuples >= gpuivf.gpu_min_rows and the service ready) sends all queries in one request and re-ranks exactly on the CPU, queries the GPU candidates cannot prove falling back to the CPU pass. Join the rows back with JOIN t ON t.ctid = r.heap_tid in the same statement. Errors: 42809 not a gpuivf index, 42501 no SELECT privilege on the table or row-level security enabled on it, 55000 invalid index, 22023 k outside 1..1024, 22000 a NULL query or one whose dimensions differ from the index''s (the message of the opclass''s distance function; context names the query). An empty array gives no rows; a NULL argument gives no rows';

-------------------------------------------------------------------------------
-- gpuivf routing: where a scan runs, measured (issue 6; src/gpuivfgpu.c,
-- src/gpuivfexplain.c)
-------------------------------------------------------------------------------

CREATE FUNCTION codevec_gpu_routing(
	index regclass,
	OUT metric text,
	OUT dims integer,
	OUT reltuples double precision,
	OUT kernels text,
	OUT calibration_rows bigint,
	OUT calibrated_on text,
	OUT cpu_ns_per_row double precision,
	OUT cpu_mb_per_s double precision,
	OUT ping_us double precision,
	OUT launch_us double precision,
	OUT recheck_us double precision,
	OUT gpu_ns_per_row double precision,
	OUT gpu_fixed_us double precision,
	OUT break_even_rows bigint,
	OUT min_rows bigint,
	OUT knn_us_observed double precision,
	OUT device text,
	OUT detail text)
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION codevec_gpu_routing(regclass) IS
'how codevec.device = auto routes scans of a flat gpuivf index in this session, from a model measured on first use per metric and dims and cached for the session: metric, dims, reltuples (what the routing compares); kernels (codevec.cpu_kernels in use); the CPU scan''s cost per row cpu_ns_per_row (its loop run on calibration_rows rows of the index, hot, best of 3; calibrated_on says index, or synthetic for an empty one) and the vector bytes per second it reads, cpu_mb_per_s; the GPU path''s fixed cost gpu_fixed_us = ping_us (mean round trip of 16 empty requests to the GPU service; NULL when it does not run) + launch_us (assumed device time of one k-NN launch sequence: 30) + recheck_us (exact distances of the first 64 candidates) and its cost per row gpu_ns_per_row (dims x 2 bytes at 500 GB/s); break_even_rows = gpu_fixed_us / (cpu_ns_per_row - gpu_ns_per_row): from that size on the GPU is faster (NULL: unknown, or never); min_rows: the threshold applied now (gpuivf.gpu_min_rows when > 0, break_even_rows when 0, NULL when -1); knn_us_observed: mean k-NN request round trip this session saw (NULL: none yet); device (GPU, CPU, or none when the scan would fail) and detail: where a scan of the index runs now and why, as EXPLAIN says. Errors: 42809 not a gpuivf index';
