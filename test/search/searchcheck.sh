#!/usr/bin/env bash
# test/search/searchcheck.sh -- code.search's argument checks in C:
# codevec_search_check() (src/searchcheck.c) raises exactly the errors of
# the PL/pgSQL code.search_check() it replaces, and a session's first
# code.search compiles no PL/pgSQL function for them:
#   - the reference is the old PL/pgSQL text, created here as
#     ref.search_check; over a table of 36 argument lists (NULLs, unknown
#     modes, bounds, huge integers, NaN, Infinity, -0, negative floats in
#     float8out's forms, several bad at once) under extra_float_digits 1
#     (the default), 0 and 3, its outcome (SQLSTATE, message, hint, or
#     success) equals that of codevec_search_check, code.search_check and
#     code.search itself (named arguments);
#   - codevec-load defines code.search_check as LANGUAGE sql over
#     codevec_search_check; in a fresh session with track_functions = all,
#     code.search calls code.search_check once (the planner evaluates the
#     IMMUTABLE SQL function with code.search's constant arguments) and
#     codevec_search_check once, no PL/pgSQL function for the checks;
#   - on a database whose extension is 0.1.0 (no codevec_search_check)
#     codevec-load keeps the PL/pgSQL version, with the same outcomes;
#     after ALTER EXTENSION codevec UPDATE its next run replaces it by the
#     SQL one.
# Needs the PG* variables of a running server with codevec installed (its
# default model, for code.search's hybrid and vector modes); makes two
# scratch databases and drops them.  Ends with "N passed, N failed"; exit
# status 1 on failure.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LOADER=${LOADER:-$ROOT/loaders/codevec-load}
PYLIB=${CVL_TEST_PYLIB:-/usr/lib/python3.11}
PASS=0
FAIL=0
N=0
DB=searchcheck_test_$$
OLD=searchcheck_old_$$
MAINTDB=${PGDATABASE:-postgres}
cleanup() { psql -X -q -d "$MAINTDB" -c "DROP DATABASE IF EXISTS $DB" -c "DROP DATABASE IF EXISTS $OLD" >/dev/null 2>&1; }
trap cleanup EXIT

source "$ROOT/test/tap.sh"	# ok, is, like, skip, finish
Q() {		# Q DB SQL...
	local db=$1; shift
	local args=()
	for s in "$@"; do args+=(-c "$s"); done
	psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$db" -c "SET client_min_messages = warning" \
		-c "SET codevec.device = cpu" "${args[@]}"
}

CORPUS=$PYLIB/json
cleanup
psql -X -q -d "$MAINTDB" -c "CREATE DATABASE $DB" -c "CREATE DATABASE $OLD" >/dev/null || { ok 1 "create databases"; finish; }
Q "$DB" "CREATE EXTENSION codevec" >/dev/null || { ok 1 "create extension"; finish; }
PGDATABASE=$DB "$LOADER" -q --no-embed --repo json "$CORPUS" >/dev/null 2>&1
ok $? "codevec-load --no-embed of $CORPUS"

# the reference (the PL/pgSQL code.search_check before src/searchcheck.c),
# the outcome of a statement, and the argument lists: SQL expressions
# (query, k, mode, rrf_k, depth, keyword_weight)
SETUP=$(cat <<'SQL'
CREATE SCHEMA ref;
CREATE FUNCTION ref.search_check(query text, k integer, mode text, rrf_k integer,
    depth integer, keyword_weight double precision) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $f$
BEGIN
  IF query IS NULL THEN
    RAISE EXCEPTION 'code.search: query must not be NULL' USING ERRCODE = '22023';
  END IF;
  IF mode IS NULL OR mode NOT IN ('hybrid', 'vector', 'keyword') THEN
    RAISE EXCEPTION 'code.search: unknown mode "%"', mode USING ERRCODE = '22023',
      HINT = 'mode is ''hybrid'' (the default), ''vector'' or ''keyword''.';
  END IF;
  IF k IS NULL OR k < 1 OR k > 10000 THEN
    RAISE EXCEPTION 'code.search: k must be between 1 and 10000, not %', coalesce(k::text, 'NULL')
      USING ERRCODE = '22023';
  END IF;
  IF depth IS NULL OR depth < 1 OR depth > 100000 THEN
    RAISE EXCEPTION 'code.search: depth must be between 1 and 100000, not %', coalesce(depth::text, 'NULL')
      USING ERRCODE = '22023';
  END IF;
  IF rrf_k IS NULL OR rrf_k < 0 THEN
    RAISE EXCEPTION 'code.search: rrf_k must be 0 or more, not %', coalesce(rrf_k::text, 'NULL')
      USING ERRCODE = '22023';
  END IF;
  -- PostgreSQL orders NaN above Infinity: this refuses NULL, negatives, Infinity and NaN
  IF keyword_weight IS NULL OR NOT (keyword_weight >= 0 AND keyword_weight < 'Infinity') THEN
    RAISE EXCEPTION 'code.search: keyword_weight must be a finite number, 0 or more, not %',
      coalesce(keyword_weight::text, 'NULL') USING ERRCODE = '22023';
  END IF;
  RETURN true;
END
$f$;
-- 'ok' or SQLSTATE | message | hint of a statement (planned here: the
-- constant calls are folded, and raise, at plan time)
CREATE FUNCTION ref.outcome(stmt text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE
  st text;
  msg text;
  hint text;
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, hint = PG_EXCEPTION_HINT;
  RETURN st || ' | ' || msg || ' | ' || coalesce(hint, '');
END
$f$;
CREATE TABLE ref.cases (n serial, q text, k text, m text, r text, d text, w text);
INSERT INTO ref.cases (q, k, m, r, d, w) VALUES
  ('''json decoder''', '10', '''hybrid''', '5', '100', '0.35'),
  ('''''', '10000', '''keyword''', '0', '100000', '0'),
  ('''x''', '1', '''vector''', '2147483647', '1', '''-0'''),
  ('''x''', '3', '''keyword''', '5', '100', '1e308'),
  ('NULL', '10', '''hybrid''', '5', '100', '0.35'),
  ('NULL', 'NULL', 'NULL', 'NULL', 'NULL', 'NULL'),
  ('''x''', '10', '''fuzzy''', '5', '100', '0.35'),
  ('''x''', '10', 'NULL', '5', '100', '0.35'),
  ('''x''', '10', '''Hybrid''', '5', '100', '0.35'),
  ('''x''', '10', '''hybrid ''', '5', '100', '0.35'),
  ('''x''', '10', '''''', '5', '100', '0.35'),
  ('''x''', '10', '''a%s "b'' || chr(39) || ''é%%''', '5', '100', '0.35'),
  ('''x''', '0', '''fuzzy''', '-1', '0', '''NaN'''),
  ('''x''', '0', '''hybrid''', '5', '100', '0.35'),
  ('''x''', 'NULL', '''hybrid''', '5', '100', '0.35'),
  ('''x''', '10001', '''keyword''', '5', '100', '0.35'),
  ('''x''', '-2147483648', '''keyword''', '5', '100', '0.35'),
  ('''x''', '2147483647', '''vector''', '5', '100', '0.35'),
  ('''x''', '0', '''hybrid''', '-1', '0', '-1'),
  ('''x''', '10', '''hybrid''', '5', '0', '0.35'),
  ('''x''', '10', '''hybrid''', '5', 'NULL', '0.35'),
  ('''x''', '10', '''hybrid''', '5', '100001', '0.35'),
  ('''x''', '10', '''hybrid''', '-1', '-5', 'NULL'),
  ('''x''', '10', '''hybrid''', '-1', '100', '0.35'),
  ('''x''', '10', '''hybrid''', 'NULL', '100', '0.35'),
  ('''x''', '10', '''hybrid''', '-2147483648', '100', '''NaN'''),
  ('''x''', '10', '''hybrid''', '5', '100', '-0.5'),
  ('''x''', '10', '''hybrid''', '5', '100', 'NULL'),
  ('''x''', '10', '''hybrid''', '5', '100', '''NaN'''),
  ('''x''', '10', '''hybrid''', '5', '100', '''Infinity'''),
  ('''x''', '10', '''hybrid''', '5', '100', '''-Infinity'''),
  ('''x''', '10', '''hybrid''', '5', '100', '-(0.1::float8 + 0.2::float8)'),
  ('''x''', '10', '''hybrid''', '5', '100', '-1e-300'),
  ('''x''', '10', '''hybrid''', '5', '100', '-1.7976931348623157e308'),
  ('''x''', '10', '''keyword''', '5', '100', '-4.9e-324'),
  ('''x''', '10', '''vector''', '5', '100', '-123456789.125');
SQL
)
Q "$DB" "$SETUP" >/dev/null
ok $? "the reference PL/pgSQL function and 36 argument lists"

# each case's outcome through the reference, the C function, code.search_check
# and code.search: "n ref|c|sql|search" where one differs from the reference
OUTCOMES="SELECT n, ref.outcome(format('SELECT ref.search_check((%s)::text, (%s)::integer, (%s)::text, (%s)::integer, (%s)::integer, (%s)::double precision)', q, k, m, r, d, w)) AS ref,
    ref.outcome(format('SELECT codevec_search_check((%s)::text, (%s)::integer, (%s)::text, (%s)::integer, (%s)::integer, (%s)::double precision)', q, k, m, r, d, w)) AS c,
    ref.outcome(format('SELECT code.search_check((%s)::text, (%s)::integer, (%s)::text, (%s)::integer, (%s)::integer, (%s)::double precision)', q, k, m, r, d, w)) AS sqlf,
    ref.outcome(format('SELECT count(*) FROM code.search((%s)::text, k => (%s)::integer, mode => (%s)::text, rrf_k => (%s)::integer, depth => (%s)::integer, keyword_weight => (%s)::double precision)', q, k, m, r, d, w)) AS search
  FROM ref.cases"
compare() {	# compare DB EXTRA_FLOAT_DIGITS: "errors/cases differing"
	Q "$1" "SET extra_float_digits = $2" "CREATE TEMP TABLE o AS $OUTCOMES" \
		"SELECT count(*) FILTER (WHERE ref <> 'ok') || '/' || count(*) || ' ' ||
		        coalesce(string_agg(n || ' ' || ref || ' ~ ' || c || ' ~ ' || sqlf || ' ~ ' || search, E'\n')
		                 FILTER (WHERE c <> ref OR sqlf <> ref OR search <> ref), 'none') FROM o"
}
for efd in 1 0 3; do
	is "$(compare "$DB" $efd)" "32/36 none" \
		"extra_float_digits $efd: 32 of 36 argument lists raise; codevec_search_check, code.search_check and code.search raise exactly what the PL/pgSQL reference raises (SQLSTATE, message, hint) and accept the 4 others"
done
is "$(Q "$DB" "SELECT ref.outcome('SELECT code.search_check(NULL, 1, NULL, 1, 1, 1)') || E'\n' ||
	ref.outcome('SELECT code.search_check(''x'', 1, NULL, 1, 1, 1)') || E'\n' ||
	ref.outcome('SELECT code.search_check(''x'', NULL, ''vector'', 1, 1, 1)') || E'\n' ||
	ref.outcome('SELECT code.search_check(''x'', 1, ''vector'', 1, 1, ''-Infinity'')')")" \
	"22023 | code.search: query must not be NULL | 
22023 | code.search: unknown mode \"<NULL>\" | mode is 'hybrid' (the default), 'vector' or 'keyword'.
22023 | code.search: k must be between 1 and 10000, not NULL | 
22023 | code.search: keyword_weight must be a finite number, 0 or more, not -Infinity | " \
	"the messages, spelled out for four of them"
is "$(Q "$DB" "SELECT codevec_search_check('x', 10, 'hybrid', 5, 100, 0.35)")" t "valid arguments: true"

# ------------------------------------------------------------ no PL/pgSQL
is "$(Q "$DB" "SELECT l.lanname || ' ' || p.provolatile::text || ' ' || p.proparallel::text || ' ' ||
	(p.prosrc ~ 'codevec_search_check\(query, k, mode, rrf_k, depth, keyword_weight\)')
	FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
	WHERE p.oid = 'code.search_check(text, integer, text, integer, integer, double precision)'::regprocedure")" \
	"sql i s true" "code.search_check is LANGUAGE sql IMMUTABLE PARALLEL SAFE, a call of codevec_search_check"
# the functions a fresh session's first code.search calls (this
# transaction's counts, track_functions = all: SQL and C functions too,
# a call the planner makes to fold one included): name, language, calls
CALLED="SELECT string_agg(f.schemaname || '.' || f.funcname || ' ' || l.lanname || ' ' || f.calls, ', ' ORDER BY f.funcname)
	FROM pg_stat_xact_user_functions f JOIN pg_proc p ON p.oid = f.funcid JOIN pg_language l ON l.oid = p.prolang
	WHERE f.funcname LIKE '%search_check'"
FIRST=$(Q "$DB" "SET track_functions = 'all'" "BEGIN" \
	"SELECT count(*) FROM code.search('decode a json document', k => 3, mode => 'keyword')" \
	"$CALLED" "COMMIT" | tr '\n' ' ')
is "$FIRST" "3 public.codevec_search_check c 1, code.search_check sql 1 " \
	"a fresh session's code.search: 3 rows; the checks are code.search_check (SQL) and codevec_search_check (C), once each: no PL/pgSQL function compiled for them"
is "$(Q "$DB" "SET track_functions = 'all'" "BEGIN" \
	"SELECT ref.search_check('x', 3, 'keyword', 5, 100, 0.35)" "$CALLED" "COMMIT" | tr '\n' ' ')" \
	"t ref.search_check plpgsql 1 " "... where the PL/pgSQL reference is seen as such (the method sees one)"

# ------------------------------------------------------------ an extension without it
if Q "$OLD" "CREATE EXTENSION codevec VERSION '0.1.0'" >/dev/null 2>&1; then
	PGDATABASE=$OLD "$LOADER" -q --no-embed --repo json "$CORPUS" >/dev/null 2>&1
	ok $? "codevec-load on an extension at 0.1.0 (no codevec_search_check)"
	Q "$OLD" "$SETUP" >/dev/null
	is "$(Q "$OLD" "SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
		WHERE p.oid = 'code.search_check(text, integer, text, integer, integer, double precision)'::regprocedure")" \
		plpgsql "... code.search_check stays PL/pgSQL there"
	is "$(Q "$OLD" "SET extra_float_digits = 1" "CREATE TEMP TABLE o AS $OUTCOMES" \
		"SELECT count(*) FROM o WHERE ref <> 'ok' AND (ref <> sqlf OR ref <> search)")" 0 \
		"... with the reference's errors for code.search_check and code.search"
	Q "$OLD" "ALTER EXTENSION codevec UPDATE" >/dev/null &&
		PGDATABASE=$OLD "$LOADER" -q --no-embed --repo json "$CORPUS" >/dev/null 2>&1
	ok $? "ALTER EXTENSION codevec UPDATE, codevec-load again"
	is "$(Q "$OLD" "SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
		WHERE p.oid = 'code.search_check(text, integer, text, integer, integer, double precision)'::regprocedure")" \
		sql "... replaces the PL/pgSQL code.search_check by the SQL one"
	is "$(compare "$OLD" 1)" "32/36 none" "... with the reference's outcomes"
else
	ok 0 "# SKIP codevec 0.1.0's install script is not installed"
fi

finish
