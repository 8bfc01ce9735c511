-- codevec_code_parser and the codevec_code text search configuration

-- the token types
SELECT * FROM ts_token_type('codevec_code_parser');

-- every token of a line of code, in order: wholes before their pieces,
-- and the leaves (word, part, number, blank) tile the input
SELECT t.alias, p.token
FROM ts_parse('codevec_code_parser', 'self.parseHTTPConfig(read_file_v2, __init__)') p
JOIN ts_token_type('codevec_code_parser') t ON t.tokid = p.tokid;
SELECT string_agg(p.token, '' ORDER BY ord) = 'self.parseHTTPConfig(read_file_v2, __init__)' AS leaves_tile_input
FROM ts_parse('codevec_code_parser', 'self.parseHTTPConfig(read_file_v2, __init__)') WITH ORDINALITY p(tokid, token, ord)
WHERE p.tokid IN (1, 2, 3, 12);

-- identifiers: camelCase, acronyms, snake_case, digits, SCREAMING_CASE
SELECT w, to_tsvector('codevec_code', w) FROM (VALUES
	('parseHTTPConfig'), ('XMLHttpRequest'), ('getURLs'), ('HTTPServer'),
	('read_file'), ('MAX_PATH_LEN'), ('_private'), ('__init__'), ('utf8Decode'),
	('sha256sum'), ('int64_t'), ('x'), ('IOError'), ('ABC'), ('parse2Json'), ('42'),
	('IDsForUser'), ('HTTPSConnection')) v(w);

-- paths and member chains: whole, then each identifier (and its parts)
SELECT w, to_tsvector('codevec_code', w) FROM (VALUES
	('os.path.join'), ('src/foo/bar_baz.c'), ('std::vector'), ('node->next'),
	('a.b::c->d/e'), ('json.decoder.JSONDecoder.decode'), ('3.14'), ('/usr/lib/python3.11')) v(w);

-- separators that join nothing are blanks: no path
SELECT w, to_tsvector('codevec_code', w) FROM (VALUES
	('end.'), ('.start'), ('x . y'), ('x..y'), ('x::'), ('->y'), ('x-y'), ('x:y'), ('...'), ('::'), ('->')) v(w);

-- non-ASCII identifiers (cases that do not depend on the server's LC_CTYPE;
-- test/search checks camelCase, spaces and symbols under C.UTF-8)
SELECT w, to_tsvector('codevec_code', w) FROM (VALUES
	('café'), ('naïve_bayes'), ('größe_berechnen'), ('π_value'), ('变量名'), ('日本.東京')) v(w);

-- English stop words go, code words stay; no stemming
SELECT to_tsvector('codevec_code', 'how do I parse the config files if it is missing');
SELECT to_tsvector('codevec_code', 'is_valid for_each');

-- documents and questions tokenize alike
SELECT to_tsvector('codevec_code', 'def parseHTTPConfig(self): return os.path.join(a, b)')
	@@ plainto_tsquery('codevec_code', 'HTTP config') AS camel_found_by_words;
-- (an AND query needs the other spelling's whole identifier too: code.search ORs)
SELECT to_tsvector('codevec_code', 'fn parse_http_config() {}')
	@@ plainto_tsquery('codevec_code', 'parseHTTPConfig') AS snake_vs_camel_and;
SELECT to_tsvector('codevec_code', 'fn parse_http_config() {}')
	@@ replace(plainto_tsquery('codevec_code', 'parseHTTPConfig')::text, '&', '|')::tsquery AS snake_vs_camel_or;
SELECT to_tsvector('codevec_code', 'fn parse_http_config() {}')
	@@ to_tsquery('codevec_code', 'parse_http_config') AS whole_identifier;
SELECT plainto_tsquery('codevec_code', 'the parseHTTPConfig of os.path');

-- ts_headline works (PostgreSQL's prsd_headline with this parser)
SELECT ts_headline('codevec_code', 'def parseHTTPConfig(self): return os.path.join(a, b)',
	to_tsquery('codevec_code', 'config | join'));

-- edge cases: nothing to index, NULL, long tokens, 1 MB lines
SELECT to_tsvector('codevec_code', '');
SELECT to_tsvector('codevec_code', '   ');
SELECT to_tsvector('codevec_code', '___');
SELECT to_tsvector('codevec_code', NULL::text) IS NULL AS null_in_null_out;
SELECT count(*) FROM ts_parse('codevec_code_parser', '');
-- a token over 255 bytes is not indexed; its parts are
SELECT to_tsvector('codevec_code', repeat('a', 256));
SELECT to_tsvector('codevec_code', repeat('a', 255)) = to_tsvector('simple', repeat('a', 255)) AS token_of_255_bytes_kept;
SELECT tsvector_to_array(to_tsvector('codevec_code', repeat('ab_', 100) || 'End'));
-- long blanks go out in pieces of at most 255 bytes (no "too long" notice)
SELECT max(length(token)), string_agg(token, '') = repeat(' ', 5000) || repeat('é', 3000) AS tiles
FROM ts_parse('codevec_code_parser', repeat(' ', 5000) || repeat('é', 3000));
-- 1 MB: one identifier, one path of 150,000 members, 50,000 words
SELECT length(to_tsvector('codevec_code', repeat('x', 1000000)));
SELECT tsvector_to_array(to_tsvector('codevec_code', repeat('fooBar.', 150000)));
SELECT length(to_tsvector('codevec_code', string_agg('v' || i, ' '))) FROM generate_series(1, 50000) i;
SELECT octet_length(repeat('é_', 350000)), tsvector_to_array(to_tsvector('codevec_code', repeat('é_', 350000)));
SELECT count(*) FROM ts_parse('codevec_code_parser', repeat('a.', 500000));
