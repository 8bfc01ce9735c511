-- pgTAP: the catalog surface of codevec (types, functions, operators,
-- opclass-ready support functions, volatility, strictness, comments)
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS codevec;
BEGIN;
SELECT plan(92);

-- the type
SELECT has_type('codevec');
SELECT is((SELECT typstorage::text FROM pg_type WHERE typname = 'codevec'), 'e',
          'codevec is stored external (uncompressed, out of line when large)');
SELECT is((SELECT typmodin::text FROM pg_type WHERE typname = 'codevec'), 'codevec_typmod_in',
          'codevec has a typmod input function');
SELECT is(format_type('codevec'::regtype, 384), 'codevec(384)', 'codevec(384) formats with its typmod');

-- functions, signatures and return types
SELECT has_function('l2_distance', ARRAY['codevec', 'codevec']);
SELECT has_function('l2_squared_distance', ARRAY['codevec', 'codevec']);
SELECT has_function('inner_product', ARRAY['codevec', 'codevec']);
SELECT has_function('negative_inner_product', ARRAY['codevec', 'codevec']);
SELECT has_function('cosine_distance', ARRAY['codevec', 'codevec']);
SELECT has_function('l1_distance', ARRAY['codevec', 'codevec']);
SELECT has_function('codevec_dims', ARRAY['codevec']);
SELECT has_function('codevec_norm', ARRAY['codevec']);
SELECT has_function('l2_normalize', ARRAY['codevec']);
SELECT function_returns('l2_distance', ARRAY['codevec', 'codevec'], 'double precision');
SELECT function_returns('cosine_distance', ARRAY['codevec', 'codevec'], 'double precision');
SELECT function_returns('codevec_dims', ARRAY['codevec'], 'integer');
SELECT function_returns('l2_normalize', ARRAY['codevec'], 'codevec');

-- distance operators as pgvector spells them, each backed by its function
SELECT has_operator('codevec', '<->', 'codevec', 'double precision');
SELECT has_operator('codevec', '<#>', 'codevec', 'double precision');
SELECT has_operator('codevec', '<=>', 'codevec', 'double precision');
SELECT has_operator('codevec', '<+>', 'codevec', 'double precision');
SELECT is((SELECT oprcode::text FROM pg_operator WHERE oprname = '<->' AND oprleft = 'codevec'::regtype), 'l2_distance', '<-> is l2_distance');
SELECT is((SELECT oprcode::text FROM pg_operator WHERE oprname = '<#>' AND oprleft = 'codevec'::regtype), 'negative_inner_product', '<#> is negative_inner_product');
SELECT is((SELECT oprcode::text FROM pg_operator WHERE oprname = '<=>' AND oprleft = 'codevec'::regtype), 'cosine_distance', '<=> is cosine_distance');
SELECT ok((SELECT bool_and(oprcom = oid) FROM pg_operator WHERE oprname IN ('<->', '<#>', '<=>', '<+>') AND oprleft = 'codevec'::regtype),
          'distance operators are their own commutators');

-- comparison operators and the default btree opclass
SELECT has_operator('codevec', '<', 'codevec', 'boolean');
SELECT has_operator('codevec', '=', 'codevec', 'boolean');
SELECT has_operator('codevec', '>', 'codevec', 'boolean');
SELECT has_opclass('codevec_ops');
SELECT ok((SELECT opcdefault FROM pg_opclass WHERE opcname = 'codevec_ops'), 'codevec_ops is the default btree opclass');
SELECT is((SELECT count(*)::int FROM pg_amop ao JOIN pg_opfamily f ON f.oid = ao.amopfamily WHERE f.opfname = 'codevec_ops'), 5,
          'btree family has the five strategies');
SELECT is((SELECT amproc::text FROM pg_amproc ap JOIN pg_opfamily f ON f.oid = ap.amprocfamily WHERE f.opfname = 'codevec_ops' AND amprocnum = 1),
          'codevec_cmp', 'btree support function 1 is codevec_cmp');

-- casts
SELECT has_cast('integer[]', 'codevec');
SELECT has_cast('real[]', 'codevec');
SELECT has_cast('double precision[]', 'codevec');
SELECT has_cast('codevec', 'real[]');
SELECT has_cast('codevec', 'codevec');
SELECT is((SELECT castcontext::text FROM pg_cast WHERE castsource = 'real[]'::regtype AND casttarget = 'codevec'::regtype), 'a',
          'real[] -> codevec is an assignment cast');

-- aggregates, parallel safe with combine functions
SELECT has_function('avg', ARRAY['codevec']);
SELECT has_function('sum', ARRAY['codevec']);
SELECT is_aggregate('avg', ARRAY['codevec']);
SELECT is_aggregate('sum', ARRAY['codevec']);
SELECT is((SELECT count(*)::int FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
           WHERE p.proname IN ('avg', 'sum') AND p.proargtypes[0] = 'codevec'::regtype
             AND a.aggcombinefn <> 0 AND p.proparallel = 's'), 2,
          'avg and sum have combine functions and are parallel safe');
SELECT is((SELECT count(*)::int FROM pg_aggregate a JOIN pg_proc p ON p.oid = a.aggfnoid
           WHERE p.proname = 'codevec_bm25_block_agg' AND a.aggcombinefn <> 0 AND a.aggserialfn <> 0
             AND a.aggdeserialfn <> 0 AND p.proparallel = 's'), 1,
          'codevec_bm25_block_agg has combine, serial and deserial functions and is parallel safe');

-- opclass-ready support functions for the index access method: one distance
-- function per opclass, IMMUTABLE STRICT PARALLEL SAFE, (codevec, codevec) -> float8
SELECT volatility_is('l2_squared_distance', ARRAY['codevec', 'codevec'], 'immutable');
SELECT volatility_is('negative_inner_product', ARRAY['codevec', 'codevec'], 'immutable');
SELECT volatility_is('cosine_distance', ARRAY['codevec', 'codevec'], 'immutable');
SELECT is_strict('l2_squared_distance', ARRAY['codevec', 'codevec']);
SELECT is_strict('negative_inner_product', ARRAY['codevec', 'codevec']);
SELECT is_strict('cosine_distance', ARRAY['codevec', 'codevec']);

-- every function of the extension: volatility, strictness, parallel safety
SELECT is(ARRAY(
	SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
	WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'codevec') AND d.deptype = 'e'
	  AND p.prokind = 'f'
	  AND p.proname NOT IN ('codevec_build_info', 'codevec_model_info', 'embed', 'gpuivfhandler',
	                        'codevec_gpu_status', 'codevec_gpu_ping', 'codevec_gpu_autotune', 'codevec_tokenize',
	                        'codevec_gpu_routing', 'codevec_knn', 'codevec_knn_support', 'codevec_bm25_topk',
	                        'codevec_bm25_blocks_topk', 'codevec_bm25_gpu_topk', 'codevec_bm25_build', 'codevec_index_check',
	                        'codevec_gpu_stages', 'codevec_gpu_prewarm_list', 'codevec_gpu_devices',
	                        'codevec_gpu_prefetch', 'codevec_search_check')
	  -- the support functions of codevec_bm25_block_agg (internal state: not strict)
	  AND p.proname NOT LIKE 'codevec\_bm25\_block\_agg\_%'
	  AND NOT (p.provolatile = 'i' AND p.proisstrict AND p.proparallel = 's')
	ORDER BY 1), ARRAY[]::text[],
	'every function but the documented exceptions is IMMUTABLE STRICT PARALLEL SAFE');
SELECT volatility_is('codevec_gpu_status', ARRAY[]::text[], 'volatile');
SELECT volatility_is('codevec_index_check', ARRAY['regclass'], 'volatile');
-- runs the query it is given (SPI), as tablefunc's crosstab does, also in
-- parallel workers (code.bm25_refresh(): a range of ids each)
SELECT volatility_is('codevec_bm25_build', ARRAY['text', 'real[]', 'real', 'real', 'double precision', 'integer'], 'volatile');
SELECT is((SELECT proparallel FROM pg_proc WHERE proname = 'codevec_bm25_build'), 's',
          'codevec_bm25_build is PARALLEL SAFE (code.bm25_refresh() calls it in parallel workers)');
SELECT volatility_is('codevec_gpu_ping', ARRAY['integer'], 'volatile');
-- posts a request (when, never what, a scan answers): STABLE so that
-- code.search stays inlinable; one session segment: the leader only
SELECT volatility_is('codevec_gpu_prefetch', ARRAY['regclass', 'codevec', 'integer'], 'stable');
SELECT is((SELECT proparallel::text || proisstrict::text FROM pg_proc WHERE proname = 'codevec_gpu_prefetch'), 'rfalse',
          'codevec_gpu_prefetch is PARALLEL RESTRICTED and not STRICT (NULL arguments: false)');
-- asks the GPU service (one session segment: the leader only); STABLE and
-- STRICT as codevec_bm25_blocks_topk, whose rows it returns
SELECT volatility_is('codevec_bm25_gpu_topk', ARRAY['integer[]', 'double precision[]', 'integer', 'regclass', 'integer', 'bigint', 'xid'], 'stable');
SELECT is((SELECT proparallel::text || proisstrict::text FROM pg_proc WHERE proname = 'codevec_bm25_gpu_topk'), 'rtrue',
          'codevec_bm25_gpu_topk is PARALLEL RESTRICTED and STRICT');
SELECT volatility_is('codevec_gpu_stages', ARRAY[]::text[], 'volatile');
SELECT volatility_is('codevec_gpu_prewarm_list', ARRAY[]::text[], 'volatile');
SELECT volatility_is('codevec_gpu_devices', ARRAY[]::text[], 'volatile');
SELECT volatility_is('codevec_tokenize', ARRAY['text'], 'stable');
-- code.search's argument checks (codevec-load's code.search_check calls it):
-- IMMUTABLE so that a call with constants is folded at plan time, not STRICT
-- because a NULL argument is an error
SELECT is((SELECT provolatile::text || proisstrict::text || proparallel::text FROM pg_proc
           WHERE oid = 'codevec_search_check(text, integer, text, integer, integer, double precision)'::regprocedure),
          'ifalses', 'codevec_search_check is IMMUTABLE, not STRICT, PARALLEL SAFE');
SELECT volatility_is('embed', ARRAY['text'], 'stable');
SELECT volatility_is('embed', ARRAY['text[]'], 'stable');
SELECT is_strict('embed', ARRAY['text']);
SELECT is_strict('embed', ARRAY['text[]']);
SELECT function_returns('embed', ARRAY['text'], 'codevec');
SELECT function_returns('embed', ARRAY['text[]'], 'codevec[]');

-- the gpuivf access method and its opclasses
SELECT ok(EXISTS (SELECT 1 FROM pg_am WHERE amname = 'gpuivf' AND amtype = 'i'), 'access method gpuivf exists');
SELECT is(ARRAY(SELECT opcname::text FROM pg_opclass WHERE opcmethod = (SELECT oid FROM pg_am WHERE amname = 'gpuivf') ORDER BY 1),
          ARRAY['codevec_cosine_ops', 'codevec_ip_ops', 'codevec_l2_ops'], 'gpuivf has the three opclasses');
SELECT is((SELECT opcname::text FROM pg_opclass WHERE opcmethod = (SELECT oid FROM pg_am WHERE amname = 'gpuivf') AND opcdefault),
          'codevec_cosine_ops', 'codevec_cosine_ops is the default gpuivf opclass');
SELECT is(ARRAY(SELECT c.opcname || ':' || o.oprname || ':' || ap.amproc::regproc::text
                FROM pg_opclass c JOIN pg_amop ao ON ao.amopfamily = c.opcfamily
                JOIN pg_operator o ON o.oid = ao.amopopr
                JOIN pg_amproc ap ON ap.amprocfamily = c.opcfamily AND ap.amprocnum = 1
                WHERE c.opcmethod = (SELECT oid FROM pg_am WHERE amname = 'gpuivf') AND ao.amoppurpose = 'o'
                ORDER BY 1),
          ARRAY['codevec_cosine_ops:<=>:cosine_distance', 'codevec_ip_ops:<#>:negative_inner_product',
                'codevec_l2_ops:<->:l2_distance'],
          'each opclass orders by its operator and uses the same function as support function 1');
SELECT ok((SELECT bool_and(amvalidate(oid)) FROM pg_opclass WHERE opcmethod = (SELECT oid FROM pg_am WHERE amname = 'gpuivf')),
          'amvalidate accepts every gpuivf opclass');
SELECT ok(EXISTS (SELECT 1 FROM pg_settings WHERE name = 'gpuivf.probes' AND boot_val = '1'), 'gpuivf.probes defaults to 1');
SELECT isnt(obj_description((SELECT oid FROM pg_am WHERE amname = 'gpuivf'), 'pg_am'), NULL, 'the access method has a comment');
SELECT volatility_is('codevec_build_info', ARRAY[]::text[], 'volatile');
SELECT is((SELECT proparallel::text FROM pg_proc WHERE proname = 'codevec_build_info'), 'r',
          'codevec_build_info is parallel restricted (it talks to the driver)');

-- comments on every SQL object of the extension
SELECT is(ARRAY(
	SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid AND d.classid = 'pg_proc'::regclass
	WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'codevec') AND d.deptype = 'e'
	  AND obj_description(p.oid, 'pg_proc') IS NULL
	ORDER BY 1), ARRAY[]::text[], 'every function and aggregate has a comment');
SELECT is(ARRAY(
	SELECT o.oid::regoperator::text FROM pg_operator o JOIN pg_depend d ON d.objid = o.oid AND d.classid = 'pg_operator'::regclass
	WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'codevec') AND d.deptype = 'e'
	  AND obj_description(o.oid, 'pg_operator') IS NULL
	ORDER BY 1), ARRAY[]::text[], 'every operator has a comment');
SELECT isnt(obj_description('codevec'::regtype, 'pg_type'), NULL, 'the type has a comment');
SELECT isnt(obj_description((SELECT oid FROM pg_opclass WHERE opcname = 'codevec_ops'), 'pg_opclass'), NULL, 'the opclass has a comment');

-- GUCs
SELECT ok(EXISTS (SELECT 1 FROM pg_settings WHERE name = 'codevec.cpu_kernels'), 'codevec.cpu_kernels is defined');
SELECT is(current_setting('codevec.cpu_kernels'), 'auto', 'codevec.cpu_kernels defaults to auto');
SELECT throws_ok($$SET codevec.no_such_setting = 1$$, '42602', NULL, 'the codevec. GUC prefix is reserved');

-- the build report works without a GPU
SELECT is((SELECT version FROM codevec_build_info()), '0.2.0', 'codevec_build_info reports the version');
SELECT ok((SELECT cpu_kernels IN ('scalar', 'avx2', 'avx512') FROM codevec_build_info()), 'codevec_build_info names the CPU kernels');
-- the device count against a fact from outside CUDA: the driver's device
-- files /dev/nvidia0, /dev/nvidia1, ... (none on a machine without a GPU,
-- as in CI); a build without CUDA reports 0 whatever the machine has
SELECT is((SELECT cuda_devices FROM codevec_build_info()),
	(SELECT CASE WHEN cuda_compiled THEN (SELECT count(*)::int FROM pg_ls_dir('/dev') f WHERE f ~ '^nvidia[0-9]+$') ELSE 0 END
	 FROM codevec_build_info()),
	'codevec_build_info: cuda_devices is 0 without CUDA, else the number of /dev/nvidiaN device files');
SELECT is((SELECT (gpu_name IS NULL) = (cuda_devices = 0) FROM codevec_build_info()), true,
	'codevec_build_info: gpu_name is NULL exactly when there is no device');
SELECT is((SELECT (cuda_runtime IS NULL) = NOT cuda_compiled FROM codevec_build_info()), true,
	'codevec_build_info: cuda_runtime is set exactly in a build with CUDA');

SELECT * FROM finish();
ROLLBACK;
