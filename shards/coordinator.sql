-- shards/coordinator.sql -- the coordinator's side of a sharded codevec
-- (shards/README.md): code.shard_add() checks a shard and attaches its
-- code.repos, code.files and code.snippets as postgres_fdw foreign
-- partitions of partitioned tables of the same names, so codevec-load's
-- code.search() and plain SQL run unchanged over every shard.
-- Needs the codevec and postgres_fdw extensions. Idempotent.

CREATE SCHEMA IF NOT EXISTS code;
CREATE SCHEMA IF NOT EXISTS code_shards;
COMMENT ON SCHEMA code_shards IS
'a sharded codevec coordinator''s own objects: one foreign table code_shards.info_N a shard '
'(its code.shard_info) and the column templates imported from the first shard';

CREATE TABLE IF NOT EXISTS code_shards.shards (
  shard integer PRIMARY KEY,
  server name NOT NULL UNIQUE,
  conninfo text NOT NULL,
  added_at timestamptz NOT NULL DEFAULT now());
-- a snippet and its file are on one shard: joins of code.snippets and
-- code.files go to each shard whole (with their filters, ORDER BY and LIMIT)
DO $d$ BEGIN
  EXECUTE format('ALTER DATABASE %I SET enable_partitionwise_join = on', current_database());
END $d$;
SET enable_partitionwise_join = on;

COMMENT ON TABLE code_shards.shards IS
'the shards this coordinator has attached (code.shard_add): number, foreign server and the conninfo it was made from';

CREATE OR REPLACE FUNCTION code_shards.conninfo_options(conninfo text,
    OUT server_opts text[], OUT user_opts text[])
LANGUAGE plpgsql IMMUTABLE STRICT AS $f$
DECLARE
  m text[];
BEGIN
  server_opts := '{}';
  user_opts := '{}';
  -- key=value pairs separated by blanks; a value may be single-quoted
  FOR m IN SELECT regexp_matches(conninfo, '([a-z_]+)\s*=\s*(''(?:[^''\\]|\\.)*''|[^\s'']+)', 'g') LOOP
    IF m[2] LIKE '''%' THEN
      m[2] := regexp_replace(substr(m[2], 2, length(m[2]) - 2), '\\(.)', '\1', 'g');
    END IF;
    IF m[1] IN ('user', 'password') THEN
      user_opts := user_opts || format('%I %L', m[1], m[2]);
    ELSE
      server_opts := server_opts || format('%I %L', m[1], m[2]);
    END IF;
  END LOOP;
  IF cardinality(server_opts) + cardinality(user_opts) = 0 OR
     regexp_replace(conninfo, '([a-z_]+)\s*=\s*(''(?:[^''\\]|\\.)*''|[^\s'']+)', '', 'g') !~ '^\s*$' THEN
    RAISE EXCEPTION 'malformed shard conninfo "%"', conninfo USING ERRCODE = '22023',
      HINT = 'Write key=value pairs separated by blanks: host=/tmp port=5661 dbname=code.';
  END IF;
END
$f$;
COMMENT ON FUNCTION code_shards.conninfo_options(text) IS
'a libpq key=value conninfo as postgres_fdw options: user and password for the user mapping, the rest for the '
'server (URIs are not taken); error 22023 when it is not key=value pairs';

CREATE OR REPLACE FUNCTION code.shard_add(shard integer, conninfo text) RETURNS text
LANGUAGE plpgsql AS $f$
DECLARE
  srv name := 'codevec_shard_' || shard;
  o record;
  info record;
  mine record;
  ext text;
  dims integer;
  lo bigint;
  hi bigint;
  t text;
BEGIN
  IF shard IS NULL OR shard < 0 OR shard > 511 THEN
    RAISE EXCEPTION 'shard number must be between 0 and 511, not %', coalesce(shard::text, 'NULL')
      USING ERRCODE = '22023';
  END IF;
  IF EXISTS (SELECT 1 FROM code_shards.shards s WHERE s.shard = shard_add.shard) THEN
    RAISE EXCEPTION 'shard % is already attached', shard USING ERRCODE = '42710',
      HINT = 'code.shard_drop(shard) detaches it first.';
  END IF;
  o := code_shards.conninfo_options(conninfo);
  EXECUTE format('CREATE SERVER %I FOREIGN DATA WRAPPER postgres_fdw OPTIONS (%s)', srv,
    array_to_string(o.server_opts || ARRAY['extensions ''codevec''', 'async_capable ''true''',
      'fetch_size ''100'''], ', '));
  EXECUTE format('CREATE USER MAPPING FOR PUBLIC SERVER %I%s', srv,
    CASE WHEN cardinality(o.user_opts) > 0 THEN ' OPTIONS (' || array_to_string(o.user_opts, ', ') || ')' ELSE '' END);
  EXECUTE format('CREATE FOREIGN TABLE code_shards.%I (shard integer, lo bigint, hi bigint, '
    'codevec_version text, model text, model_dims integer, model_sha256 text, emb_dims integer, '
    'server_version_num integer) SERVER %I OPTIONS (schema_name ''code'', table_name ''shard_info'')',
    'info_' || shard, srv);
  BEGIN
    EXECUTE format('SELECT * FROM code_shards.%I', 'info_' || shard) INTO info;
  EXCEPTION WHEN undefined_table THEN
    RAISE EXCEPTION 'shard % (%) has no code.shard_info', shard, conninfo USING ERRCODE = '55000',
      HINT = 'Make it a shard first: tools/shards.sh init.';
  END;
  IF info IS NULL THEN
    RAISE EXCEPTION 'shard % (%) has no shard number', shard, conninfo USING ERRCODE = '55000',
      HINT = 'Make it a shard first: tools/shards.sh init.';
  END IF;
  IF info.shard <> shard THEN
    RAISE EXCEPTION 'the database at % is shard %, not %', conninfo, info.shard, shard USING ERRCODE = '55000';
  END IF;
  -- the coordinator embeds the queries: its codevec and model must be the shards'
  SELECT e.extversion INTO ext FROM pg_extension e WHERE e.extname = 'codevec';
  IF info.codevec_version IS DISTINCT FROM ext THEN
    RAISE EXCEPTION 'shard % runs codevec %, the coordinator %', shard, info.codevec_version, ext
      USING ERRCODE = '55000', HINT = 'Install the same codevec version on every server.';
  END IF;
  SELECT m.name, m.dims, m.sha256 INTO mine FROM codevec_model_info() m;
  IF (info.model, info.model_dims, info.model_sha256) IS DISTINCT FROM (mine.name, mine.dims, mine.sha256) THEN
    RAISE EXCEPTION 'shard % embeds with model % (% dimensions, weights sha256 %), the coordinator with % (%, %)',
      shard, info.model, info.model_dims, left(info.model_sha256, 12), mine.name, mine.dims, left(mine.sha256, 12)
      USING ERRCODE = '55000',
      HINT = 'Set codevec.model to the same model folder on every server: a query vector is comparable only with vectors of its own model.';
  END IF;
  SELECT a.atttypmod INTO dims FROM pg_attribute a
    WHERE a.attrelid = to_regclass('code.snippets') AND a.attname = 'emb' AND NOT a.attisdropped;
  IF info.emb_dims IS DISTINCT FROM coalesce(dims, mine.dims) THEN
    RAISE EXCEPTION 'shard %''s code.snippets.emb has % dimensions, the coordinator''s %', shard,
      coalesce(info.emb_dims::text, 'no'), coalesce(dims, mine.dims) USING ERRCODE = '22000';
  END IF;
  lo := info.lo;
  hi := info.hi;
  IF to_regclass('code.snippets') IS NULL THEN
    -- the partitioned parents take the shard's columns (IMPORT FOREIGN SCHEMA) and are
    -- partitioned so that a snippet and its file are on one shard: snippets by
    -- file_id, files and repos by id (partitionwise joins go to the shard whole)
    EXECUTE format('IMPORT FOREIGN SCHEMA code LIMIT TO (repos, files, snippets) FROM SERVER %I INTO code_shards', srv);
    CREATE TABLE code.repos (LIKE code_shards.repos) PARTITION BY RANGE (id);
    CREATE TABLE code.files (LIKE code_shards.files) PARTITION BY RANGE (id);
    CREATE TABLE code.snippets (LIKE code_shards.snippets) PARTITION BY RANGE (file_id);
    DROP FOREIGN TABLE code_shards.repos, code_shards.files, code_shards.snippets;
    COMMENT ON TABLE code.snippets IS
      'functions, methods, classes and types of every shard: postgres_fdw foreign partitions by file_id range (shards/README.md)';
  END IF;
  FOREACH t IN ARRAY ARRAY['repos', 'files', 'snippets'] LOOP
    EXECUTE format('CREATE FOREIGN TABLE code.%I PARTITION OF code.%I FOR VALUES FROM (%s) TO (%s) '
      'SERVER %I OPTIONS (schema_name ''code'', table_name %L)', t || '_' || shard, t, lo, hi + 1, srv, t);
  END LOOP;
  INSERT INTO code_shards.shards (shard, server, conninfo) VALUES (shard, srv, conninfo);
  RETURN srv;
END
$f$;
COMMENT ON FUNCTION code.shard_add(integer, text) IS
'attach shard number shard (a database prepared by tools/shards.sh init) at conninfo (libpq key=value pairs): '
'a postgres_fdw server codevec_shard_N (extensions ''codevec'' so <=> and codevec constants ship, '
'async_capable so the shards scan in parallel), a user mapping for PUBLIC (user/password from conninfo), and '
'code.repos_N, code.files_N, code.snippets_N as foreign partitions of code.repos, code.files, code.snippets '
'(made on the first call, with the shard''s columns). Checks first that the shard''s codevec version, model '
'(name, dims, weights'' sha256) and code.snippets.emb dimension are the coordinator''s. Returns the server''s '
'name. Errors: 22023 bad number or conninfo, 42710 already attached, 55000 not a shard / another number / '
'another codevec version or model, 22000 another emb dimension, 08001 (postgres_fdw) unreachable; nothing is '
'left behind by a refused shard';

CREATE OR REPLACE FUNCTION code.shard_drop(shard integer) RETURNS void
LANGUAGE plpgsql AS $f$
DECLARE
  srv name;
BEGIN
  SELECT s.server INTO srv FROM code_shards.shards s WHERE s.shard = shard_drop.shard;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'shard % is not attached', shard USING ERRCODE = '42704';
  END IF;
  EXECUTE format('DROP SERVER %I CASCADE', srv);
  DELETE FROM code_shards.shards s WHERE s.shard = shard_drop.shard;
END
$f$;
COMMENT ON FUNCTION code.shard_drop(integer) IS
'detach shard number shard: drops its foreign server and with it its foreign partitions, info table and user '
'mapping (the shard''s data stays where it is). Error 42704 when it is not attached';

CREATE OR REPLACE FUNCTION code.shard_for(repo text, shards integer) RETURNS integer
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $f$
  SELECT ((hashtextextended(repo, 0) % shards + shards) % shards)::integer
$f$;
COMMENT ON FUNCTION code.shard_for(text, integer) IS
'the shard (0 .. shards - 1) a repository of this name is loaded into: its name''s hashtextextended (seed 0) modulo '
'the number of shards -- PostgreSQL''s own hash, so any client can ask the coordinator';

CREATE OR REPLACE FUNCTION code.shard_refresh() RETURNS void
LANGUAGE plpgsql AS $f$
DECLARE
  r record;
BEGIN
  -- statistics of every foreign partition (the planner's row counts: without
  -- them it sorts everything locally instead of merging each shard's order)
  FOR r IN SELECT c.oid::regclass AS rel FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
           WHERE i.inhparent IN ('code.repos'::regclass, 'code.files'::regclass, 'code.snippets'::regclass)
           ORDER BY 1 LOOP
    EXECUTE format('ANALYZE %s', r.rel);
  END LOOP;
  ANALYZE code.repos, code.files, code.snippets;
  -- the keyword side: postings over every shard's rows, global statistics
  PERFORM code.bm25_refresh();
  ANALYZE code.bm25_postings, code.bm25_terms;
END
$f$;
COMMENT ON FUNCTION code.shard_refresh() IS
'after loads into the shards: ANALYZE every foreign partition and the partitioned parents (postgres_fdw samples '
'the shards), and rebuild the coordinator''s BM25 postings from every shard''s rows (code.bm25_refresh(): df, n and '
'average length over all shards, so keyword scores equal one server''s on the same rows). Errors: the shards'' '
'(08001 naming the server when one is down)';
