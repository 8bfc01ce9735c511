-- embed(): tokenizer + BERT encoder (issue 4)
-- Needs `make model` (the default model, code-minilm-l6 from models/) and the committed
-- fixtures under test/embed/fixtures (tiny random BERTs, broken folders).
\getenv abs_srcdir PG_ABS_SRCDIR
\set fx :abs_srcdir '/test/embed/fixtures'
\set tiny :fx '/tiny-bert'
\set tiny16 :fx '/tiny-bert-f16-cls'
\set badcfg :fx '/bad-config'
\set badst :fx '/bad-safetensors'
-- the CPU encoder, whatever the build: without this, a build with CUDA on a
-- server without the GPU service warns once that it uses the CPU
-- (codevec.device = auto; test/gpuservice checks that warning)
SET codevec.device = cpu;
CREATE FUNCTION pg_temp.err(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE q;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '"/[^"]*/test/embed/fixtures/', '"$FIXTURES/', 'g');
END $$;

-- the default installed model (the first call loads the library and its GUCs);
-- test/models checks its sha256 against models/code-minilm-l6/SHA256SUMS
SELECT name, dims, layers, heads, pooling, normalized, max_tokens, max_positions,
       vocab_size, dtype, source LIKE '%/codevec_models/code-minilm-l6' AS installed,
       sha256 ~ '^[0-9a-f]{64}$' AS sha256_hex, weight_bytes
FROM codevec_model_info();
SHOW codevec.model;
SHOW codevec.max_tokens;
SELECT codevec_dims(e) AS dims, round(codevec_norm(e)::numeric, 5) AS norm
FROM (SELECT embed('parse the config file and fall back to defaults') AS e) s;
-- meaning: a query is nearer its code than unrelated code
SELECT cosine_distance(embed('read a json config file'), embed('def load_config(path): return json.load(open(path))'))
     < cosine_distance(embed('read a json config file'), embed('int main(void) { return 0; }')) AS nearer;

-- empty and whitespace-only text: [CLS] [SEP], a full-length unit vector
SELECT codevec_dims(embed('')) AS dims, round(codevec_norm(embed(''))::numeric, 5) AS norm;
SELECT cosine_distance(embed(''), embed(E' \t\n\u00a0 ')) < 1e-6 AS same_as_empty;
-- control characters and zero-width marks are dropped, accents stripped
SELECT cosine_distance(embed('cafe'), embed(E'caf\u00e9\u200b')) < 1e-6 AS cleaned;

-- text far over the budget is truncated to codevec.max_tokens tokens:
-- 20000 repetitions embed like the 254 that fit between [CLS] and [SEP]
-- (a lower bound is written BETWEEN x AND y, never > x: PostgreSQL sorts NaN
-- above every number, so NaN > x is true and a NaN result would pass)
SELECT cosine_distance(embed(repeat('word ', 20000)), embed(repeat('word ', 254))) < 1e-6 AS truncated,
       cosine_distance(embed(repeat('word ', 20000)), embed(repeat('word ', 200))) BETWEEN 1e-6 AND 2 AS not_shorter;
SET codevec.max_tokens = 8;
SELECT cosine_distance(embed('one two three four five six seven eight nine ten'),
                       embed('one two three four five six')) < 1e-6 AS budget_8;
SELECT max_tokens FROM codevec_model_info();
SET codevec.max_tokens = 513;
SELECT pg_temp.err($$SELECT embed('x')$$);
SELECT pg_temp.err($$SET codevec.max_tokens = 1$$);
RESET codevec.max_tokens;

-- NULL (STRICT) and arrays
SELECT embed(NULL::text) IS NULL AS null_text, embed(NULL::text[]) IS NULL AS null_array;
SELECT embed('{}'::text[]) AS empty_array;
SELECT array_length(a, 1) AS n, a[2] IS NULL AS null_kept,
       cosine_distance(a[1], embed('open a file')) < 1e-6 AS first,
       cosine_distance(a[3], embed('')) < 1e-6 AS third
FROM (SELECT embed(ARRAY['open a file', NULL, '']) AS a) s;
-- one batched call gives what one call per row gives (70 rows: 3 batches)
SELECT bool_and(cosine_distance(b.e, embed(t.s)) < 1e-6) AS batch_equals_single, count(*)
FROM (SELECT 'snippet number ' || g || repeat(' word', g % 17) AS s, g FROM generate_series(1, 70) g) t
JOIN (SELECT u.e, u.g FROM unnest(embed(ARRAY(SELECT 'snippet number ' || g || repeat(' word', g % 17)
                                              FROM generate_series(1, 70) g ORDER BY g)))
      WITH ORDINALITY AS u(e, g)) b ON b.g = t.g;
SELECT array_dims(embed('[0:1]={a,b}'::text[])) AS bounds_kept;

-- a folder path: the tiny random BERT fixture (32 dims, mean pooling)
SET codevec.model = :'tiny';
SELECT name, dims, layers, heads, pooling, normalized, max_positions, vocab_size, dtype,
       sha256 ~ '^[0-9a-f]{64}$' AS has_sha256
FROM codevec_model_info();
SELECT pg_temp.err($$SELECT embed('x')$$) AS over_positions;  -- max_tokens 256 > 64 positions
SET codevec.max_tokens = 64;
SELECT codevec_dims(embed('hello world')) AS dims, round(codevec_norm(embed('hello world'))::numeric, 5) AS norm;
SELECT codevec_dims(embed(repeat('hello ', 1000))) AS dims;
-- F16 weights, "bert." names, CLS pooling, no 2_Normalize
SET codevec.model = :'tiny16';
SELECT name, dims, pooling, normalized, dtype FROM codevec_model_info();
SELECT codevec_dims(embed('hello world')) AS dims, codevec_norm(embed('hello world')) BETWEEN 1.5 AND 1e6 AS not_normalized;
RESET codevec.max_tokens;

-- bad folders and names: an error with a SQLSTATE, and the next good setting works
SET codevec.model = '/nonexistent/model';
SELECT pg_temp.err($$SELECT embed('x')$$) AS missing_folder;
SET codevec.model = 'no-such-model';
SELECT pg_temp.err($$SELECT embed('x')$$) AS missing_name;
SET codevec.model = 'bad name!';
SELECT pg_temp.err($$SELECT embed('x')$$) AS bad_name;
SET codevec.model = '';
SELECT pg_temp.err($$SELECT embed('x')$$) AS empty_name;
SET codevec.model = :'badst';
SELECT pg_temp.err($$SELECT embed('x')$$) AS corrupt;
SELECT pg_temp.err($$SELECT embed(ARRAY['x'])$$) AS corrupt_array;
SET codevec.model = :'badcfg';
SELECT pg_temp.err($$SELECT * FROM codevec_model_info()$$) AS unsupported;
RESET codevec.model;
SELECT name, dims FROM codevec_model_info();

-- a folder path needs pg_read_server_files; installed names do not
CREATE ROLE codevec_embed_user;
SET ROLE codevec_embed_user;
SELECT codevec_dims(embed('x')) AS dims;
SET codevec.model = :'tiny';
SELECT pg_temp.err($$SELECT embed('x')$$) AS no_privilege;
RESET codevec.model;
RESET ROLE;
DROP ROLE codevec_embed_user;

-- codevec_tokenize: the ids embed() encodes (bert-base-uncased's vocabulary:
-- hello 7592, world 2088; [CLS] 101, [SEP] 102), truncated at max_tokens
SELECT codevec_tokenize('Hello, WORLD') AS ids;
SET codevec.max_tokens = 3;
SELECT codevec_tokenize('hello world') AS truncated;
RESET codevec.max_tokens;
SELECT array_length(codevec_tokenize(repeat('word ', 1000)), 1) AS at_most_max_tokens;
