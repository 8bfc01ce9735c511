-- bench_sql.sql: embed() through SQL, in one backend of a running server
-- with codevec installed.  psql -v inputs=/abs/path/inputs.json -f bench_sql.sql
-- (the server reads the inputs file: superuser, file readable by the server).
\set ON_ERROR_STOP on
\pset tuples_only on
\pset format unaligned
CREATE EXTENSION IF NOT EXISTS codevec;
CREATE TEMP TABLE inp AS SELECT pg_read_file(:'inputs')::json AS j;
CREATE FUNCTION pg_temp.rss_mb() RETURNS float8 LANGUAGE sql AS $$
	SELECT (regexp_match(pg_read_file('/proc/' || pg_backend_pid() || '/status'),
	                     'VmRSS:\s+(\d+) kB'))[1]::float8 / 1024 $$;
CREATE TEMP TABLE m (k text, v float8);
INSERT INTO m VALUES ('rss_before_mb', pg_temp.rss_mb());
INSERT INTO m SELECT 'dims', dims FROM codevec_model_info();
INSERT INTO m VALUES ('rss_after_load_mb', pg_temp.rss_mb());
CREATE TEMP TABLE lat (ms float8);
DO $$
DECLARE
	q text := (SELECT j->>'query' FROM inp);
	t0 timestamptz;
	texts text[];
	size int;
BEGIN
	FOR i IN 1..20 LOOP PERFORM embed(q); END LOOP;
	FOR i IN 1..200 LOOP
		t0 := clock_timestamp();
		PERFORM embed(q);
		INSERT INTO lat VALUES (extract(epoch FROM clock_timestamp() - t0) * 1000);
	END LOOP;
	FOREACH size IN ARRAY ARRAY[128, 256] LOOP
		PERFORM set_config('codevec.max_tokens', size::text, true);
		texts := ARRAY(SELECT json_array_elements_text(j->('snippets_' || size)) FROM inp);
		PERFORM embed(texts);	-- warm-up
		t0 := clock_timestamp();
		PERFORM embed(texts);
		INSERT INTO m VALUES ('seq_per_s_' || size,
			cardinality(texts) / extract(epoch FROM clock_timestamp() - t0));
	END LOOP;
END $$;
INSERT INTO m SELECT 'query_p50_ms', percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) FROM lat;
INSERT INTO m SELECT 'query_p99_ms', percentile_cont(0.99) WITHIN GROUP (ORDER BY ms) FROM lat;
INSERT INTO m VALUES ('peak_rss_mb', pg_temp.rss_mb());
SELECT json_object_agg(k, v) FROM m;
