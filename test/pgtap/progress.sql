-- pgTAP: gpuivf builds report their phases in pg_stat_progress_create_index
-- (ambuildphasename): the names pg_stat_progress_create_index shows
\set ON_ERROR_STOP 1
\set QUIET 1
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pgtap;
CREATE EXTENSION IF NOT EXISTS codevec;
BEGIN;
SELECT plan(1);

SELECT is(ARRAY(SELECT pg_indexam_progress_phasename(a.oid, n)
                FROM pg_am a, generate_series(1, 6) n WHERE a.amname = 'gpuivf' ORDER BY n),
          ARRAY['initializing', 'sampling rows', 'performing k-means', 'assigning rows to lists',
                'loading tuples', NULL],
          'gpuivf names its build phases 1..5 and no others');

SELECT * FROM finish();
ROLLBACK;
