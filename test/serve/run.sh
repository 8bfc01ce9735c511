#!/usr/bin/env bash
# test/serve/run.sh -- codevec-serve (issue 16) with real clients:
#   - api_check.py: the JSON API against code.search / code.more_like_this
#     / the repository files (psql and Python as references), then bad
#     input: missing, malformed, overlong (1 MB) parameters, invalid UTF-8,
#     SQL injection, paths outside the page, slow clients, 1,000
#     concurrent requests, memory;
#   - mcp_check.py: the official MCP Python SDK (PyPI mcp) as the client
#     over stdio and Streamable HTTP, both protocol eras, every tool
#     against the SQL functions, and raw JSON-RPC error codes;
#   - page_check.py: the page in headless Chromium driven by Selenium;
#   - limits_check.py: 414/431 as JSON, --request-timeout, --connection-time;
#   - here: --help and usage errors, the pool's warm-up at start, the
#     bearer token, the database going away and coming back, SIGTERM,
#     nothing written to the database.
#
# Needs the PG* variables of a running PostgreSQL 15 server with codevec
# installed (and its default model, for embed()), Debian's chromium and
# chromium-driver (tools/install-deps.sh); installs the pinned PyPI
# packages of requirements.txt into a virtual environment
# ($SERVE_TEST_VENV, default ~/.cache/codevec/serve-venv).  Makes a scratch
# database and drops it.  SERVE_SCREENSHOT=FILE saves the page's picture.
# Ends with "N passed, N failed"; exit status 1 on failure.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SERVE=${SERVE:-$ROOT/serve/codevec-serve}
LOADER=${LOADER:-$ROOT/loaders/codevec-load}
[ -x "$LOADER" ] || LOADER=$(pg_config --bindir)/codevec-load
PYLIB=${CVL_TEST_PYLIB:-/usr/lib/python3.11}
VENV=${SERVE_TEST_VENV:-${HOME:-/root}/.cache/codevec/serve-venv}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/serve-test.XXXXXX")
chmod 755 "$TMP"
PASS=0
FAIL=0
N=0
DB=serve_test_$$
MAINTDB=${PGDATABASE:-postgres}
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	wait 2>/dev/null
	psql -X -q -d "$MAINTDB" -c "ALTER DATABASE $DB ALLOW_CONNECTIONS true" >/dev/null 2>&1
	psql -X -q -d "$MAINTDB" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1
	rm -rf "$TMP"
}
trap cleanup EXIT

source "$ROOT/test/tap.sh"	# ok, is, like, skip, finish
source "$ROOT/test/venv.sh"	# pinned_venv
# counts the "ok - ..." / "not ok - ..." lines of a checker; a checker
# that dies without its last line is one more failure
tally() {		# tally NAME COMMAND...
	local out=$TMP/$1.out rc
	"${@:2}" > "$out" 2>"$TMP/$1.err"
	rc=$?
	while IFS= read -r line; do
		case "$line" in
			"ok - "*) ok 0 "${line#ok - }" ;;
			"not ok - "*) ok 1 "${line#not ok - }" ;;
			*) echo "$line" ;;
		esac
	done < "$out"
	[ $rc -eq 0 ] || { ok 1 "$1 ran to its end (exit $rc)"; tail -15 "$TMP/$1.err" | sed 's/^/#   /'; }
}
# starts codevec-serve with ARGS on a free port; sets PORT, SPID, BASE
start_serve() {
	local log=$1; shift
	"$SERVE" --port 0 "$@" > "$log" 2>&1 &
	SPID=$!
	PIDS+=("$SPID")
	PORT=
	for _ in $(seq 100); do
		PORT=$(sed -n 's|^codevec-serve: listening on http://127\.0\.0\.1:\([0-9]*\)/$|\1|p' "$log")
		[ -n "$PORT" ] && break
		kill -0 "$SPID" 2>/dev/null || break
		sleep 0.1
	done
	BASE=http://127.0.0.1:$PORT
	[ -n "$PORT" ]
}
status_of() { curl -s -o /dev/null -w '%{http_code}' "$@"; }

# ------------------------------------------------------------ setup
if [ ! -x "$SERVE" ]; then ok 1 "codevec-serve is built ($SERVE)"; finish; fi
pinned_venv "$VENV" "$HERE/requirements.txt" "the pinned PyPI packages install (mcp, selenium: requirements.txt)"
PY=$VENV/bin/python
if ! psql -X -q -d "$MAINTDB" -c "CREATE DATABASE $DB" >/dev/null 2>"$TMP/err"; then
	ok 1 "database reachable"; cat "$TMP/err"; finish
fi
export PGDATABASE=$DB
psql -X -q -c "CREATE EXTENSION codevec" -c "ALTER DATABASE $DB SET codevec.device = cpu" >/dev/null
ok $? "codevec installs"

C=$TMP/corpus
mkdir -p "$C/json" "$C/tests" "$C/pkg" "$C/csrc"
cp "$PYLIB"/json/*.py "$C/json/"
cp "$PYLIB/textwrap.py" "$PYLIB/shlex.py" "$C/pkg/"
printf 'import json\n\ndef test_roundtrip():\n    """Round-trip a document."""\n    assert json.loads(json.dumps([1])) == [1]\n' > "$C/tests/test_json.py"
printf '/* Adds two numbers. */\nint add(int a, int b)\n{\n\treturn a + b;\n}\n\n/* Reads a configuration file, falling back to defaults. */\nint read_config(const char *path)\n{\n\treturn path ? 1 : 0;\n}\n' > "$C/csrc/util.c"
chmod -R a+rX "$C"
"$LOADER" -q --repo corpus "$C"
is $? 0 "a small corpus loads ($(psql -XAtq -c "SELECT count(*) FROM code.snippets") snippets)"

# a fingerprint of everything in schema code, and its write counters
fingerprint() {
	psql -XAtq -c "SELECT pg_stat_clear_snapshot()" -c "SELECT
		(SELECT md5(string_agg(s::text, '' ORDER BY s.id)) FROM code.snippets s) ||
		(SELECT md5(string_agg(f::text, '' ORDER BY f.id)) FROM code.files f) ||
		(SELECT md5(string_agg(r::text, '' ORDER BY r.id)) FROM code.repos r) || ' ' ||
		(SELECT sum(n_tup_ins + n_tup_upd + n_tup_del) FROM pg_stat_user_tables WHERE schemaname = 'code')"
}
sleep 1
FP0=$(fingerprint)

# ------------------------------------------------------------ the command line
echo "# the command line"
"$SERVE" --help > "$TMP/help"
is $? 0 "--help exits 0"
missing=
for o in --dbname --listen --port --token --pool --threads --max-connections --idle-timeout \
	--query-timeout --wait-timeout --request-timeout --connection-time --static-dir --mcp-stdio --quiet --no-warm-up \
	/api/search /mcp SIGTERM; do
	grep -q -- "$o" "$TMP/help" || missing="$missing $o"
done
is "$missing" "" "--help documents every option, the routes and SIGTERM"
# the version is the extension's: codevec.control's default_version
ctl_version=$(sed -n "s/^default_version = '\(.*\)'$/\1/p" "$ROOT/codevec.control")
is "$("$SERVE" --version)" "codevec-serve $ctl_version" "--version prints codevec.control's default_version ($ctl_version)"
"$SERVE" --colour >/dev/null 2>&1; is $? 2 "an unknown option exits 2"
"$SERVE" --port 70000 >/dev/null 2>"$TMP/err"; is $? 2 "--port 70000 exits 2"
grep -q "between 0 and 65535" "$TMP/err"; ok $? "... saying the range"
"$SERVE" --listen no.such.host.invalid --port 0 >/dev/null 2>"$TMP/err"; is $? 1 "an unknown --listen address exits 1"
"$SERVE" --static-dir /nonexistent --port 0 >/dev/null 2>"$TMP/err"; is $? 1 "a --static-dir without the page exits 1"

# ------------------------------------------------------------ the warm-up
echo "# the pool's warm-up: every connection opened and each mode searched once at start"
serve_conns() {	# the server's connections to $DB: count, and how many last ran a search
	psql -XAtq -d "$MAINTDB" -c "SELECT count(*) || '/' || count(*) FILTER (WHERE query LIKE 'SELECT s.id, s.repo,%code.search(%')
		FROM pg_stat_activity WHERE application_name = 'codevec-serve' AND datname = '$DB'"
}
if start_serve "$TMP/warm.log" --pool 3 --quiet; then
	for _ in $(seq 100); do grep -q "warm-up: .* of 3" "$TMP/warm.log" && break; sleep 0.1; done
	grep -q "warm-up: 3 of 3 database connections opened and searched once" "$TMP/warm.log"
	ok $? "--pool 3: the log says 3 of 3 connections warmed, before any request"
	is "$(serve_conns)" "3/3" "... 3 connections open, each last ran code.search (pg_stat_activity)"
	kill -TERM "$SPID"; wait "$SPID"
	is $? 0 "... and stops cleanly"
else ok 1 "codevec-serve starts with --pool 3"; cat "$TMP/warm.log"; fi
if start_serve "$TMP/nowarm.log" --pool 3 --quiet --no-warm-up; then
	sleep 1
	is "$(serve_conns)" "0/0" "--no-warm-up: no connection before the first request"
	is "$(status_of "$BASE/api/search?q=json&mode=keyword")" 200 "... the first request opens one (200)"
	is "$(serve_conns)" "1/1" "... one connection"
	kill -TERM "$SPID"; wait "$SPID"
	is $? 0 "... and stops cleanly"
else ok 1 "codevec-serve starts with --no-warm-up"; cat "$TMP/nowarm.log"; fi

# ------------------------------------------------------------ the JSON API, bad input
echo "# the JSON API and bad input"
if start_serve "$TMP/serve.log" --idle-timeout 2; then ok 0 "codevec-serve starts (port $PORT)"
else ok 1 "codevec-serve starts"; cat "$TMP/serve.log"; finish; fi
grep -q "^codevec-serve: listening on http://127.0.0.1:$PORT/$" "$TMP/serve.log"
ok $? "binds 127.0.0.1 by default"
MAIN_PID=$SPID
MAIN_BASE=$BASE
tally api "$PY" "$HERE/api_check.py" "$BASE" "$SPID"
grep -Eq '^[0-9T:.-]+Z 127\.0\.0\.1 "GET /api/repos" 200 [0-9]+ [0-9.]+ms$' "$TMP/serve.log"
ok $? "access log: time, client, request, status, bytes, duration"

# ------------------------------------------------------------ limits
echo "# limits: sizes answered as JSON, the request deadline, the connection time"
if start_serve "$TMP/limits.log" --request-timeout 1 --connection-time 2; then
	tally limits "$PY" "$HERE/limits_check.py" "$BASE"
	grep -q "closed (--connection-time)" "$TMP/limits.log"
	ok $? "the closed connection is logged"
	kill -TERM "$SPID"; wait "$SPID"
	is $? 0 "... and stops cleanly"
else ok 1 "codevec-serve starts with --request-timeout 1 --connection-time 2"; cat "$TMP/limits.log"; fi
if start_serve "$TMP/tpc.log" --threads 0 --quiet; then
	is "$(status_of "$BASE/api/search?q=json&mode=keyword")" 200 "--threads 0 (a thread per connection) serves"
	kill -TERM "$SPID"; wait "$SPID"
	is $? 0 "... and stops cleanly"
else ok 1 "codevec-serve starts with --threads 0"; cat "$TMP/tpc.log"; fi
# the sections below talk to the first server again
SPID=$MAIN_PID BASE=$MAIN_BASE PORT=${MAIN_BASE##*:}

# ------------------------------------------------------------ MCP
echo "# MCP: the official Python SDK over stdio and Streamable HTTP"
tally mcp "$PY" "$HERE/mcp_check.py" "$SERVE" "$BASE"

# ------------------------------------------------------------ the page
echo "# the page in headless Chromium (Selenium)"
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
	tally page "$PY" "$HERE/page_check.py" "$BASE" ${SERVE_SCREENSHOT:+"$SERVE_SCREENSHOT"}
else
	ok 1 "chromium and chromium-driver are installed (tools/install-deps.sh)"
fi

# ------------------------------------------------------------ the database goes away
echo "# the database goes away and comes back"
psql -XAtq -d "$MAINTDB" -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
	WHERE datname = '$DB' AND application_name = 'codevec-serve'" >/dev/null
is "$(status_of "$BASE/api/search?q=json&mode=keyword")" 200 "its connections killed: the next request reconnects (200)"
psql -XAtq -d "$MAINTDB" -c "ALTER DATABASE $DB ALLOW_CONNECTIONS false" \
	-c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '$DB'" >/dev/null
curl -s "$BASE/api/search?q=json&mode=keyword" > "$TMP/away.json"
is "$(python3 -c "import json; e = json.load(open('$TMP/away.json'))['error']; print(e['status'], e['sqlstate'], 'database unavailable' in e['message'])")" \
	"503 08006 True" "database gone: 503, SQLSTATE 08006, 'database unavailable'"
is "$(status_of "$BASE/healthz")" 503 "... /healthz says 503"
is "$(status_of "$BASE/")" 200 "... the page is still served"
psql -XAtq -d "$MAINTDB" -c "ALTER DATABASE $DB ALLOW_CONNECTIONS true" >/dev/null
is "$(status_of "$BASE/api/search?q=json&mode=keyword")" 200 "database back: 200 again"
kill -0 "$SPID"; ok $? "the server never died"

# ------------------------------------------------------------ the token
echo "# --token"
start_serve "$TMP/token.log" --token s3cret --quiet
ok $? "starts with --token"
is "$(status_of "$BASE/api/repos")" 401 "/api/ without a token: 401"
is "$(status_of -H 'Authorization: Bearer wrong!' "$BASE/api/repos")" 401 "a wrong token: 401"
is "$(status_of -H 'Authorization: Bearer s3cret' "$BASE/api/repos")" 200 "the token: 200"
is "$(status_of -X POST -H 'Content-Type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"ping"}' "$BASE/mcp")" 401 \
	"/mcp without the token: 401"
is "$(status_of "$BASE/healthz")/$(status_of "$BASE/")" 200/200 "/healthz and the page need none"
curl -s -D - -o /dev/null "$BASE/api/repos" | grep -qi '^WWW-Authenticate: Bearer'
ok $? "401 names the Bearer scheme"
[ ! -s "$TMP/token.log" ] || ! grep -q '"GET' "$TMP/token.log"
ok $? "--quiet: no access log"
kill -TERM "$SPID"; wait "$SPID"

# ------------------------------------------------------------ SIGTERM
echo "# SIGTERM"
# a lock makes a search wait in the database while SIGTERM arrives
psql -XAtq -c "BEGIN" -c "LOCK TABLE code.snippets IN ACCESS EXCLUSIVE MODE" -c "SELECT pg_sleep(1.5)" -c "COMMIT" >/dev/null &
LOCKER=$!
sleep 0.3
curl -s -o "$TMP/inflight.json" -w '%{http_code}' "$MAIN_BASE/api/search?q=wrap+text&k=50" > "$TMP/inflight.code" &
CURL=$!
sleep 0.4
kill -TERM "$MAIN_PID"
t0=$(date +%s%N)
wait "$MAIN_PID"
rc=$?
is "$rc" 0 "SIGTERM: exit status 0 ($(( ($(date +%s%N) - t0) / 1000000 )) ms)"
wait "$CURL" "$LOCKER"
is "$(cat "$TMP/inflight.code")" 200 "... a request in flight at SIGTERM is answered first"
grep -q "SIGTERM: finishing running requests" "$TMP/serve.log" && grep -q "codevec-serve: stopped" "$TMP/serve.log"
ok $? "... after finishing running requests (log)"

# ------------------------------------------------------------ a database without code
echo "# a database nothing was loaded into"
start_serve "$TMP/empty.log" --quiet -d "$MAINTDB"
ok $? "starts on a database without schema code"
curl -s "$BASE/healthz" > "$TMP/empty.json"
is "$(python3 -c "import json; e = json.load(open('$TMP/empty.json'))['error']; print(e['status'], 'codevec-load' in e['message'])")" \
	"503 True" "/healthz: 503, saying to load code with codevec-load"
is "$(status_of "$BASE/api/search?q=x")" 503 "/api/search: 503"
kill -TERM "$SPID"; wait "$SPID"
is $? 0 "... and stops cleanly"

# ------------------------------------------------------------ stdio and SIGTERM
mkfifo "$TMP/stdin"
exec 3<>"$TMP/stdin"		# held open: the server waits for input, never sees its end
"$SERVE" --mcp-stdio < "$TMP/stdin" > "$TMP/stdio.out" 2>&1 &
STDIO=$!
sleep 0.3
kill -TERM "$STDIO"
wait "$STDIO"
is $? 0 "--mcp-stdio: SIGTERM while waiting for input exits 0"
exec 3>&-

# ------------------------------------------------------------ nothing written
sleep 1
is "$(fingerprint)" "$FP0" "nothing written to the database: same rows in schema code, no inserts, updates or deletes"
is "$(psql -XAtq -d "$MAINTDB" -c "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'codevec-serve' AND datname = '$DB'")" 0 \
	"no connection left behind"

finish
