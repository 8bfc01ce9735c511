/* codevec--0.1.0--0.2.0.sql: what 0.2.0 adds to 0.1.0 */

-- complain if script is sourced in psql, rather than via ALTER EXTENSION
\echo Use "ALTER EXTENSION codevec UPDATE TO '0.2.0'" to load this file. \quit

-- codevec_gpu_status() counts the requests answered on the CPU instead of
-- the GPU (codevec.device = auto); a new OUT column means a new definition
DROP FUNCTION codevec_gpu_status();
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
	OUT message text,
	OUT fallbacks bigint)
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION codevec_gpu_status() IS
'the GPU service (a background worker when codevec is in shared_preload_libraries): state (absent, starting, ready, no device, stopped), pid, generation (bumped at each restart), device name, device memory used and total (MB), models and index copies on the device, requests served, launches (batches), mean and largest batch, request latency p50/p99 in microseconds (histogram bucket bounds, from posting to answer), why there is no device, and fallbacks: requests of any backend answered on the CPU because the service could not serve them (codevec.device = auto; with cuda they are errors), since the server started';


-- BM25 keyword ranking (issue 21; src/bm25.c).  The tables, triggers and
-- search functions over code.snippets are codevec-load's (schema code).
CREATE FUNCTION codevec_bm25_length(tsv tsvector, weights real[])
RETURNS double precision
AS 'MODULE_PATHNAME', 'codevec_bm25_length'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION codevec_bm25_length(tsvector, real[]) IS
'BM25 document length dl: the sum over the lexemes of tsv of their weighted term frequency (each position counts weights[its weight], weights a real[4] in ts_rank''s order {D, C, B, A}; a lexeme without positions counts once at D). Errors: 2202E for weights not of 4 elements, 22023 for a negative or non-finite weight';

CREATE FUNCTION codevec_bm25_impacts(tsv tsvector, weights real[], k1 real, b real,
    avgdl double precision)
RETURNS TABLE(lexeme text, impact real)
AS 'MODULE_PATHNAME', 'codevec_bm25_impacts'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 50;
COMMENT ON FUNCTION codevec_bm25_impacts(tsvector, real[], real, real, double precision) IS
'BM25 term impacts of one document (Robertson and Zaragoza 2009): a row per lexeme of tsv with impact = tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl / avgdl)), computed in double and rounded to real, tf the lexeme''s weighted term frequency and dl = codevec_bm25_length(tsv, weights). A query''s score is the sum of idf * impact over its lexemes. Errors 22023: k1 below 0, b outside 0..1, avgdl not above 0, bad weights';

CREATE FUNCTION codevec_bm25_topk(terms integer[], lexemes text[], idf double precision[],
    k integer, weights real[], k1 real, b real, avgdl double precision,
    postings_index regclass, docs_index regclass, tsv_column name)
RETURNS TABLE(id bigint, score double precision)
AS 'MODULE_PATHNAME', 'codevec_bm25_topk'
LANGUAGE C STABLE STRICT PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION codevec_bm25_topk(integer[], text[], double precision[], integer, real[], real, real, double precision, regclass, regclass, name) IS
'exact BM25 top-k by Fagin''s combined algorithm (JCSS 2003): the k (1..1000000) documents with the highest sum over i of idf[i] * impact(lexemes[i], document), best first, ties by id. postings_index is a btree on (term integer, impact real DESC, id bigint) holding codevec_bm25_impacts() of every document with the same weights, k1, b and avgdl, terms[i] the term number of lexemes[i] there; lists are read in impact order by index-only scans, the best candidates are scored from their tsv_column through docs_index (a btree on their bigint id), and reading stops once no document not met yet can reach the k-th score. Errors 22023: arrays of unequal length or with NULLs, more than 1024 terms, a negative idf, k out of range, bad weights/k1/b/avgdl, indexes of the wrong shape';

-- BM25 postings in doc-ordered blocks and their exact top-k by block-max
-- pruning (src/bm25block.c, src/bm25bmp.c)
CREATE FUNCTION codevec_bm25_pack(ids bigint[], impacts real[], block_shift integer)
RETURNS bytea
AS 'MODULE_PATHNAME', 'codevec_bm25_pack'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION codevec_bm25_pack(bigint[], real[], integer) IS
'one BM25 posting block: ids (strictly increasing, all in one block of 2^block_shift ids, block = id >> block_shift) and their impacts (finite, 0 or more) as bytea, 6 bytes a posting (uint16 offset in the block, then float4 impact, native byte order); what code.bm25_blocks.postings holds. Errors 22023: arrays of unequal length, ids not increasing or in several blocks, bad impacts, block_shift outside 0..16; 22004: NULL elements';

CREATE FUNCTION codevec_bm25_unpack(postings bytea, block integer, block_shift integer)
RETURNS TABLE(id bigint, impact real)
AS 'MODULE_PATHNAME', 'codevec_bm25_unpack'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 100;
COMMENT ON FUNCTION codevec_bm25_unpack(bytea, integer, integer) IS
'the postings of a BM25 block (codevec_bm25_pack), in id order. Errors: 22023 for block_shift outside 0..16, XX001 for bytes that are not a block of that shift';

CREATE FUNCTION codevec_bm25_edit(postings bytea, block integer, block_shift integer,
    remove bigint[], add_ids bigint[], add_impacts real[])
RETURNS bytea
AS 'MODULE_PATHNAME', 'codevec_bm25_edit'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION codevec_bm25_edit(bytea, integer, integer, bigint[], bigint[], real[]) IS
'a BM25 block with the postings of the ids in remove taken out (absent ids are ignored), then add_ids added with add_impacts (an id present gets the new impact); the result may be empty (0 bytes). Errors 22023: ids outside the block, arrays of unequal length, bad impacts or block_shift; XX001 for bytes that are not a block';

CREATE FUNCTION codevec_bm25_block_max(postings bytea, block_shift integer)
RETURNS real
AS 'MODULE_PATHNAME', 'codevec_bm25_block_max'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION codevec_bm25_block_max(bytea, integer) IS
'the largest impact of a BM25 block (0 when empty): code.bm25_blocks.max_impact. Errors: 22023 for block_shift outside 0..16, XX001 for bytes that are not a block';

CREATE FUNCTION codevec_bm25_subblocks(postings bytea, block_shift integer)
RETURNS bytea
AS 'MODULE_PATHNAME', 'codevec_bm25_subblocks'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION codevec_bm25_subblocks(bytea, integer) IS
'the sub-block directory of a BM25 block (code.bm25_postings.subblocks): for each non-empty sub-block of 64 ids, in order, its number, its postings'' count and a bound of their impacts (uint16 sub-block, uint8 count - 1, uint8 q: bound = scale * q / 255, scale the block''s largest impact, q the least that bounds the sub-block), after a 9-byte header (uint32 postings, float4 scale, uint8 log2 of the sub-block size); NULL for a block of fewer than 16 postings or block_shift 6 or less. codevec_bm25_blocks_topk skips the sub-blocks whose bound cannot reach the k-th score without decoding them. Errors: 22023 for block_shift outside 0..16, XX001 for bytes that are not a block of that shift';

CREATE FUNCTION codevec_bm25_subblocks_unpack(subblocks bytea, postings bytea, block_shift integer)
RETURNS TABLE(sub integer, start integer, count integer, bound real)
AS 'MODULE_PATHNAME', 'codevec_bm25_subblocks_unpack'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE ROWS 16;
COMMENT ON FUNCTION codevec_bm25_subblocks_unpack(bytea, bytea, integer) IS
'the sub-blocks of a directory (codevec_bm25_subblocks) checked against its block: sub = the sub-block number (ids (block << block_shift) + sub * 64 up to 64 more), start = its first posting''s place among the block''s postings, count = its postings, bound = at least each of their impacts. Errors: 22023 for block_shift outside 0..16, XX001 for a directory that does not describe these postings';

CREATE FUNCTION codevec_bm25_blocks_topk(terms integer[], idf double precision[], k integer,
    blocks_index regclass, block_shift integer)
RETURNS TABLE(id bigint, score double precision)
AS 'MODULE_PATHNAME', 'codevec_bm25_blocks_topk'
LANGUAGE C STABLE STRICT PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION codevec_bm25_blocks_topk(integer[], double precision[], integer, regclass, integer) IS
'exact BM25 top-k by block-max pruning (Mallia, Suel and Tonellotto, SIGIR 2024) over doc-ordered posting blocks: the k (1..1000000) documents with the highest sum over i of idf[i] * impact(terms[i], document), best first, ties by id (the same scores as codevec_bm25_topk). blocks_index is a btree on (term integer, block integer) of a table with columns max_impact real and postings bytea (codevec_bm25_pack), a row per term and block = id >> block_shift that has postings, max_impact their largest impact, and optionally a column subblocks bytea (codevec_bm25_subblocks of the postings, or NULL). Blocks are visited by bound (the sum of idf * max_impact of the terms that have them), highest first, until a bound is below the k-th score; in a visited block the sub-blocks of 64 ids are scored by their bound (from the directories, or the decoded postings of a row without one), highest first, until a bound is below the k-th score. Errors 22023: arrays of unequal length or with NULLs, more than 1024 terms, a term given twice, a negative idf, k or block_shift (0..16) out of range, an index or table of the wrong shape; XX001 for a block that is not one, an impact above its max_impact or a directory that does not describe its block';

CREATE FUNCTION codevec_bm25_gpu_topk(terms integer[], idf double precision[], k integer,
    blocks_index regclass, block_shift integer, generation bigint, params_xmin xid)
RETURNS TABLE(id bigint, score double precision)
AS 'MODULE_PATHNAME', 'codevec_bm25_gpu_topk'
LANGUAGE C STABLE STRICT PARALLEL RESTRICTED ROWS 10;
COMMENT ON FUNCTION codevec_bm25_gpu_topk(integer[], double precision[], integer, regclass, integer, bigint, xid) IS
'codevec_bm25_blocks_topk(terms, idf, k, blocks_index, block_shift) (the same rows, score bits and errors), computed on the GPU service from its copy of every posting of blocks_index when codevec.device allows it, the service is ready and k is at most 4096: term at a time into a score per document, then a radix select of the best k (src/bm25gpu.c, cuda/bm25_device.h). The copy is the postings at generation (code.bm25_params.generation: every writer of postings raises it in the transaction that writes them); a query that finds none sends it (two ordered scans of blocks_index under its snapshot) while others rank on the CPU. params_xmin is the xmin of the code.bm25_params row the caller read: when it is the current transaction''s (its own uncommitted postings), and whenever the service cannot (out of its memory: a WARNING with codevec.device = auto, an ERROR with cuda), the CPU ranks';

-- the aggregate that packs a block from postings in any order, with a
-- combine function: code.bm25_refresh() builds the blocks with parallel
-- workers (src/bm25agg.c)
CREATE FUNCTION codevec_bm25_block_agg_sfunc(internal, bigint, real, integer)
RETURNS internal
AS 'MODULE_PATHNAME', 'codevec_bm25_block_agg_sfunc'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION codevec_bm25_block_agg_combine(internal, internal)
RETURNS internal
AS 'MODULE_PATHNAME', 'codevec_bm25_block_agg_combine'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
CREATE FUNCTION codevec_bm25_block_agg_serial(internal)
RETURNS bytea
AS 'MODULE_PATHNAME', 'codevec_bm25_block_agg_serial'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_bm25_block_agg_deserial(bytea, internal)
RETURNS internal
AS 'MODULE_PATHNAME', 'codevec_bm25_block_agg_deserial'
LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
CREATE FUNCTION codevec_bm25_block_agg_final(internal, bigint, real, integer)
RETURNS bytea
AS 'MODULE_PATHNAME', 'codevec_bm25_block_agg_final'
LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION codevec_bm25_block_agg_sfunc(internal, bigint, real, integer) IS
'transition function of codevec_bm25_block_agg (appends a posting)';
COMMENT ON FUNCTION codevec_bm25_block_agg_combine(internal, internal) IS
'combine function of codevec_bm25_block_agg (appends the postings of another worker''s state of the same block)';
COMMENT ON FUNCTION codevec_bm25_block_agg_serial(internal) IS
'serial function of codevec_bm25_block_agg (its state as bytea, to pass between parallel workers)';
COMMENT ON FUNCTION codevec_bm25_block_agg_deserial(bytea, internal) IS
'deserial function of codevec_bm25_block_agg';
COMMENT ON FUNCTION codevec_bm25_block_agg_final(internal, bigint, real, integer) IS
'final function of codevec_bm25_block_agg (sorts the postings by id and packs them)';
CREATE AGGREGATE codevec_bm25_block_agg(id bigint, impact real, block_shift integer) (
    SFUNC = codevec_bm25_block_agg_sfunc,
    STYPE = internal,
    FINALFUNC = codevec_bm25_block_agg_final,
    FINALFUNC_EXTRA,
    FINALFUNC_MODIFY = READ_WRITE,
    COMBINEFUNC = codevec_bm25_block_agg_combine,
    SERIALFUNC = codevec_bm25_block_agg_serial,
    DESERIALFUNC = codevec_bm25_block_agg_deserial,
    PARALLEL = SAFE);
COMMENT ON AGGREGATE codevec_bm25_block_agg(bigint, real, integer) IS
'one BM25 posting block from its postings in any order: the same bytea as codevec_bm25_pack() of the ids in increasing order and their impacts (NULL for no rows). Has a combine function, so a GROUP BY term, id >> block_shift over every posting runs in parallel workers (code.bm25_refresh()). Errors 22023: ids of one group in different blocks, an id twice, an impact negative or not finite, block_shift outside 0..16; 22004: NULL arguments';

-- the blocks of a whole corpus in one pass over its documents in id order:
-- code.bm25_refresh() (src/bm25build.c)
CREATE FUNCTION codevec_bm25_build(source_sql text, weights real[], k1 real, b real,
    avgdl double precision, block_shift integer)
RETURNS TABLE(lexeme text, block integer, df integer, max_impact real, postings bytea)
AS 'MODULE_PATHNAME', 'codevec_bm25_build'
LANGUAGE C VOLATILE STRICT PARALLEL SAFE ROWS 1000000;
COMMENT ON FUNCTION codevec_bm25_build(text, real[], real, real, double precision, integer) IS
'the BM25 posting blocks of the documents source_sql returns, in one pass: a row per lexeme and block of 2^block_shift ids (block = id >> block_shift), df the number of its documents that have the lexeme, max_impact the largest of their impacts, postings = codevec_bm25_pack() of their ids and codevec_bm25_impacts() with these weights, k1, b and avgdl. source_sql is run with the caller''s rights (as tablefunc''s crosstab takes its source) and must return (id bigint, tsv tsvector) with ids strictly increasing (ORDER BY id); NULL tsv rows are skipped. PARALLEL SAFE, so that code.bm25_refresh() runs one call per range of ids in each parallel worker (Parallel Append): a source_sql run in a worker must itself be parallel safe (no temporary tables). Memory: one block''s postings besides the result. Rows come block by block. Errors 22023: bad weights, k1, b, avgdl or block_shift (0..16), ids not increasing, negative or at least 2^(31 + block_shift); 22004: a NULL id; 42804: other columns than (bigint, tsvector)';

-- codevec_index_check: amcheck-style verification of a gpuivf index
CREATE FUNCTION codevec_index_check(index regclass,
    OUT lists integer, OUT data_pages bigint, OUT index_tuples bigint,
    OUT dead_tuples bigint, OUT heap_rows bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'codevec_index_check'
LANGUAGE C VOLATILE STRICT PARALLEL RESTRICTED;
COMMENT ON FUNCTION codevec_index_check(regclass) IS
'verify a gpuivf index as amcheck''s bt_index_check (heapallindexed) does a B-tree: the metapage against the catalog (dims = the column''s typmod, lists = the reloption, the opclass''s metric, list pages holding every list with a centroid of dims elements), every list''s chain (inside the data pages, no block twice, ending at its insert page; a page in no chain must be new), every live index tuple (a vector of dims finite elements, a valid heap TID, no TID twice), and every table row a fresh snapshot sees with a non-NULL vector: in the index exactly once with the same elements. Returns one row: lists, data_pages (in chains), index_tuples (live; rows not yet vacuumed included), dead_tuples (marked LP_DEAD by VACUUM), heap_rows. Takes a ShareLock on the table (writes and VACUUM wait). Errors: XX002 index_corrupted with a detail naming the block, offset or heap TID at fault; 42809 for a relation that is not a gpuivf index; 0A000 for an invalid index; 42501 without SELECT on the table';

-- embed() on the CPU runs at codevec.cpu_precision (int8 by default since
-- 0.2.0); only the description changes
COMMENT ON FUNCTION embed(text) IS
'the embedding of a text by the encoder model named by codevec.model (default: the installed default model, code-minilm-l6 after "make model"): BERT WordPiece tokens ([CLS] text [SEP], truncated to codevec.max_tokens, default 256, computed in this backend), a BERT forward pass on the GPU service when codevec.device is auto and the service is ready or cuda (fp16 weights, fp32 accumulation: cosine >= 0.9999 to the CPU fp32 result) else on this backend''s CPU at codevec.cpu_precision: int8 (the default: linear layers with SmoothQuant-smoothed weights quantized per output channel and activations per row, integer GEMMs through oneDNN on AMX or VNNI; cosine to fp32 >= 0.99 per text, >= 0.999 on average over real code snippets; CPUs without AMX/VNNI or servers without libdnnl2 run fp32 and codevec_model_info().blas says why) or fp32 (OpenBLAS: the same vector sentence-transformers gives, cosine >= 0.99999); mean or CLS pooling and L2 normalisation as the model folder says. Dimensions = the model''s hidden_size (384 for the MiniLM/bge-small/gte-small family), so vectors stored under one model must be recomputed after changing codevec.model. STABLE, not IMMUTABLE: the result depends on the codevec.model, codevec.max_tokens and codevec.cpu_precision settings; PARALLEL SAFE: workers inherit them (each loads the model once). Errors: 58P01 model folder missing, XX001 corrupt model files, 0A000 unsupported config (the message names the field), 22023 codevec.max_tokens above the model''s max_position_embeddings, 55000 codevec.device = cuda and the GPU service cannot serve (with auto: one WARNING per session and the CPU), 53200 the model does not fit codevec.gpu_memory_limit under cuda, 53200 out of memory while quantizing to int8; NULL gives NULL';

-- where the GPU service's time goes, stage by stage (issue 13; src/gpuservice.c)
CREATE FUNCTION codevec_gpu_stages(
	OUT stage text,
	OUT on_device boolean,
	OUT timings bigint,
	OUT requests bigint,
	OUT total_us double precision,
	OUT mean_us double precision,
	OUT per_request_us double precision,
	OUT max_us double precision)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL SAFE ROWS 21;
COMMENT ON FUNCTION codevec_gpu_stages() IS
'where the GPU service''s time went since the server started, one row per stage in the order a batch runs them: queue (a request posted until the service collected it, per request), window (the batching window''s wait), attach (mapping the batch''s request segments), knn gather (a group''s queries into one buffer), knn enqueue (issuing copies and kernels), knn h2d, knn kernels (similarity, top-k, re-rank, proof flags), knn candidates (the answers'' fp32 rows gathered), knn d2h (device time between CUDA events, on_device true), knn wait (the host waiting for them), knn fallback (fp32 again after a failed fp16 proof), knn answer (answers written into the requests), knn (a k-NN call on one index copy, whole), embed (an encoder call for one model''s EMBED requests, whole: copies and forward pass; a started one until it is answered), embed start (packing and issuing a started encoder call, host), run (every request of a batch), detach, wake (slots marked done, latches set), batch (attach to the wake of its last answer), finish (a group of requests started on the device while the loop went on: waiting for it and answering its requests, each group as soon as the device finished it; double buffering), overlap (batches started while another was on the device: counted, no time). timings: how often it was timed (once per batch, started group or k-NN call, never per query); requests: the requests those timings covered; total_us, mean_us (per timing), per_request_us and max_us in microseconds; all zero without a GPU service';

-- no cold start: the index copies the GPU service loads when it starts
-- (issue 13; src/gpuprewarm.c, GUC codevec.gpu_prewarm)
CREATE FUNCTION codevec_gpu_prewarm_list(
	OUT ordinal integer,
	OUT database oid,
	OUT index oid)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL SAFE ROWS 64;
REVOKE ALL ON FUNCTION codevec_gpu_prewarm_list() FROM PUBLIC;
COMMENT ON FUNCTION codevec_gpu_prewarm_list() IS
'the index copies the GPU service will load in the background at its next start (codevec.gpu_prewarm = on), most recently used first: ordinal (1 first), database and index oid, as read from pg_codevec_prewarm in the data directory (written by the service when its copies change and when it stops; at most 64). A malformed file gives a WARNING and the entries that could be read; no file, no rows. Superusers only unless granted (it reads a server file)';

-- several GPUs in one server (issue 19; src/gpuservice.c, src/gpucopies.c,
-- src/gpuspread.c; settings codevec.gpu_devices, codevec.gpu_split_rows,
-- codevec.gpu_replicate_rate)
CREATE FUNCTION codevec_gpu_devices(
	OUT device integer,
	OUT ordinal integer,
	OUT name text,
	OUT memory_used_mb bigint,
	OUT memory_free_mb bigint,
	OUT memory_total_mb bigint,
	OUT held_mb bigint,
	OUT copies integer,
	OUT ranges integer,
	OUT replicas integer,
	OUT models integer,
	OUT requests bigint)
	RETURNS SETOF record
	AS 'MODULE_PATHNAME' LANGUAGE C VOLATILE PARALLEL SAFE ROWS 8;
COMMENT ON FUNCTION codevec_gpu_devices() IS
'the GPU service''s devices, one row per entry of codevec.gpu_devices (default: every visible GPU, at most 8; a GPU listed twice is two logical devices), in that order: device (0 first), ordinal (the CUDA device number), name, memory_used_mb, memory_free_mb and memory_total_mb (the whole GPU, all processes, read when the service last loaded or dropped something), held_mb (what the service holds on this logical device), copies (whole index copies), ranges (row ranges of copies split over several devices: more rows than codevec.gpu_split_rows, or too large for one device), replicas (extra copies of indexes queried more than codevec.gpu_replicate_rate times a second), models (encoder models), requests (k-NN requests run here since the server started: a split copy''s request counts on each device holding one of its ranges, a batch shared among replicas by its queries). No rows when the service is absent, has no device, or was built without CUDA';

-- code.snippets.tsv in one C call (issue 23; src/codetsv.c)
CREATE FUNCTION codevec_code_tsvector(config regconfig, name text, signature text,
		doc text, body text) RETURNS tsvector
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;
COMMENT ON FUNCTION codevec_code_tsvector(regconfig, text, text, text, text) IS
'setweight(to_tsvector(config, name), ''A'') || setweight(to_tsvector(config, signature), ''B'') || setweight(to_tsvector(config, doc), ''C'') || setweight(to_tsvector(config, body), ''D''): the same tsvector, computed without the per-token parser and dictionary calls when config is codevec_code (its parser, every token type to one simple dictionary: each distinct token lexized once per statement). codevec-load computes code.snippets.tsv with it';

-- a gpuivf scan's GPU request posted ahead of the scan (issue 21: hybrid
-- code.search computes its keyword list while the GPU answers; src/gpuivfprefetch.c,
-- setting gpuivf.prefetch). STABLE so that code.search stays inlinable: what
-- it changes is when the request is sent, never an answer
CREATE FUNCTION codevec_gpu_prefetch(rel regclass, query codevec, k integer)
	RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C STABLE PARALLEL RESTRICTED COST 1000;
COMMENT ON FUNCTION codevec_gpu_prefetch(regclass, codevec, integer) IS
'posts the GPU k-NN request that the next ordered scan of rel (a gpuivf index, or a table: its first valid flat gpuivf index with a cosine operator class) by query will send, for at least k + 1 candidates and at least the scan''s first batch, and returns true at once; the scan then waits for that answer instead of sending its own (EXPLAIN ANALYZE: prefetched). False, posting nothing, where the scan would not use the GPU (codevec.device, the GPU service, gpuivf.gpu_min_rows, an IVF index), with gpuivf.prefetch off, without SELECT on the table, for a query of other dimensions, while this session has a request in flight, or when a scan of this transaction already asked for this query. A request no scan takes is dropped by the session''s next GPU request or at the end of the transaction';

-- the routing model's measurements are shared by the server's sessions
COMMENT ON FUNCTION codevec_gpu_routing(regclass) IS
'how codevec.device = auto routes scans of a flat gpuivf index in this session, from a model measured on first use per metric and dims and cached for the session and, where codevec is in shared_preload_libraries, for the server''s other sessions (the CPU cost per row and the ping: measured once per server, not once per session): metric, dims, reltuples (what the routing compares); kernels (codevec.cpu_kernels in use); the CPU scan''s cost per row cpu_ns_per_row (its loop run on calibration_rows rows of the index, hot, best of 3; calibrated_on says index, or synthetic for an empty one) and the vector bytes per second it reads, cpu_mb_per_s; the GPU path''s fixed cost gpu_fixed_us = ping_us (mean round trip of 16 empty requests to the GPU service; NULL when it does not run) + launch_us (assumed device time of one k-NN launch sequence: 30) + recheck_us (exact distances of the first 64 candidates) and its cost per row gpu_ns_per_row (dims x 2 bytes at 500 GB/s); break_even_rows = gpu_fixed_us / (cpu_ns_per_row - gpu_ns_per_row): from that size on the GPU is faster (NULL: unknown, or never); min_rows: the threshold applied now (gpuivf.gpu_min_rows when > 0, break_even_rows when 0, NULL when -1); knn_us_observed: mean k-NN request round trip this session saw (NULL: none yet); device (GPU, CPU, or none when the scan would fail) and detail: where a scan of the index runs now and why, as EXPLAIN says. Errors: 42809 not a gpuivf index';

-- code.search's argument checks in C (src/searchcheck.c): codevec-load's
-- code.search_check() is a SQL function calling it (evaluated at plan time
-- with constant arguments, else inlined), so a session's first code.search
-- compiles no PL/pgSQL.
-- Not STRICT: a NULL argument is an error, as in code.search
CREATE FUNCTION codevec_search_check(query text, k integer, mode text, rrf_k integer,
		depth integer, keyword_weight double precision) RETURNS boolean
	AS 'MODULE_PATHNAME' LANGUAGE C IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION codevec_search_check(text, integer, text, integer, integer, double precision) IS
'true when code.search''s arguments are valid, else error 22023 naming the first that is not, in this order: query NULL (code.search: query must not be NULL); mode NULL or not ''hybrid'', ''vector'' or ''keyword'' (code.search: unknown mode "..." with a hint; NULL shown as <NULL>); k NULL or outside 1..10000; depth NULL or outside 1..100000; rrf_k NULL or below 0; keyword_weight NULL, below 0, NaN or infinite (code.search: ... must be ..., not VALUE, VALUE as its text form or NULL). codevec-load''s code.search_check() calls it';
