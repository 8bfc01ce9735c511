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
