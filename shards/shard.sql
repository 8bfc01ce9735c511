-- shards/shard.sql -- what a shard of a sharded codevec needs besides
-- codevec-load's schema (run by `tools/shards.sh init`, after codevec-load
-- made code.repos, code.files and code.snippets): the shard's number, the
-- id range that number gives it, and the facts the coordinator checks
-- before it attaches the shard (shards/README.md has the design).
-- Idempotent.

CREATE TABLE IF NOT EXISTS code.shard (
  shard integer NOT NULL CHECK (shard BETWEEN 0 AND 511),
  one boolean PRIMARY KEY DEFAULT true CHECK (one));
COMMENT ON TABLE code.shard IS
'this database''s shard number (one row): its repos, files and snippets take ids in code.shard_range(shard)';

CREATE OR REPLACE FUNCTION code.shard_range(shard integer, OUT lo bigint, OUT hi bigint)
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $f$
  SELECT (shard::bigint << 32) + 1, ((shard::bigint + 1) << 32) - 1
$f$;
COMMENT ON FUNCTION code.shard_range(integer) IS
'the ids shard number shard (0..511) gives its rows: lo = shard * 2^32 + 1 .. hi = (shard + 1) * 2^32 - 1 '
'(4.29e9 ids a table a shard; 511 is the last number because BM25 numbers its posting blocks id >> 10 as an integer, so ids stay below 2^41); the coordinator''s partition bounds are FROM (lo) TO (hi + 1)';

CREATE OR REPLACE FUNCTION code.shard_init(shard integer) RETURNS void
LANGUAGE plpgsql AS $f$
DECLARE
  r record;
  t text;
  mx bigint;
  mn bigint;
  old integer;
BEGIN
  IF shard IS NULL OR shard < 0 OR shard > 511 THEN
    RAISE EXCEPTION 'shard number must be between 0 and 511, not %', coalesce(shard::text, 'NULL')
      USING ERRCODE = '22023';
  END IF;
  SELECT s.shard INTO old FROM code.shard s;
  IF FOUND AND old <> shard THEN
    RAISE EXCEPTION 'this database is shard %, not %', old, shard USING ERRCODE = '55000',
      HINT = 'A shard keeps its number: its rows'' ids encode it.';
  END IF;
  r := code.shard_range(shard);
  FOREACH t IN ARRAY ARRAY['repos', 'files', 'snippets'] LOOP
    EXECUTE format('SELECT min(id), max(id) FROM code.%I', t) INTO mn, mx;
    IF mn < r.lo OR mx > r.hi THEN
      RAISE EXCEPTION 'code.% has ids % to % outside shard %''s range % to %', t, mn, mx, shard, r.lo, r.hi
        USING ERRCODE = '55000',
        HINT = 'Make the shard from an empty database: tools/shards.sh init before the first load.';
    END IF;
    -- MAXVALUE: a shard that runs out of ids fails instead of taking the next shard's
    EXECUTE format('ALTER SEQUENCE code.%I MINVALUE %s MAXVALUE %s START %s RESTART %s',
      t || '_id_seq', r.lo, r.hi, r.lo, least(coalesce(mx + 1, r.lo), r.hi));
  END LOOP;
  INSERT INTO code.shard (shard) VALUES (shard) ON CONFLICT (one) DO NOTHING;
END
$f$;
COMMENT ON FUNCTION code.shard_init(integer) IS
'make this database shard number shard: code.repos, code.files and code.snippets take their ids from '
'code.shard_range(shard) (the sequences get that MINVALUE and MAXVALUE). Errors: 22023 for a number '
'outside 0..511, 55000 when the database is already another shard or holds ids outside the range';

CREATE OR REPLACE VIEW code.shard_info AS
  SELECT s.shard, r.lo, r.hi,
    (SELECT e.extversion FROM pg_extension e WHERE e.extname = 'codevec') AS codevec_version,
    m.name AS model, m.dims AS model_dims, m.sha256 AS model_sha256,
    (SELECT a.atttypmod FROM pg_attribute a
     WHERE a.attrelid = 'code.snippets'::regclass AND a.attname = 'emb' AND NOT a.attisdropped) AS emb_dims,
    current_setting('server_version_num')::integer AS server_version_num
  FROM code.shard s CROSS JOIN LATERAL code.shard_range(s.shard) r
    CROSS JOIN LATERAL codevec_model_info() m;
COMMENT ON VIEW code.shard_info IS
'what a coordinator checks before it attaches this shard (code.shard_add): the shard number and id range, '
'the codevec extension''s version, the model embed() uses (name, dims, sha256 of its weights), the '
'dimension of code.snippets.emb and the server version';
