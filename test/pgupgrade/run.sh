#!/usr/bin/env bash
# test/pgupgrade/run.sh — a codevec database survives pg_upgrade 15 -> 18
# and pg_dump / pg_restore (custom format) on 15, on 18 and from 15 to 18.
#
#   bash test/pgupgrade/run.sh
#
# Runs its own clusters (no PG* variables needed): an old one with Debian's
# PostgreSQL 15 (OLD_PG_CONFIG, default /usr/bin/pg_config) and a new one
# with 18 (NEW_PG_CONFIG, default what tools/install-pg18.sh installs; it
# is installed when missing). codevec must be installed into both (the
# same version as this tree: `make install` with each PG_CONFIG; test/run.sh
# does it for the version it runs on); a side where it is missing gets a
# CPU-only build of this tree installed (say so in the log), and its model
# from tools/fetch-model.sh. Take /tmp/codevec-db.lock around this suite on
# a shared machine when that may install into the system's 15.
#
# The database (cvu) on 15:
#   - items_flat and items_ivf: 3,000 random codevec(32) rows (a NULL one
#     too), a codevec column without typmod, a codevec[] column; a flat
#     gpuivf index (lists = 1) per opclass on items_flat and an IVF one
#     (lists = 16, probes 8) per opclass on items_ivf;
#   - 100 query vectors; the answers: top-10 ids of each query through
#     each of the six indexes (EXPLAIN checks each is an index scan);
#   - the code.* schema: codevec-load --no-embed of test/loader/fixtures
#     and loaders/, then codevec-load --embed-only (real vectors, the
#     default model), a gpuivf cosine index on code.snippets.emb; the
#     answers: code.search() of 12 questions in vector, keyword and hybrid
#     mode (top-10 ids in order).
# Checked after each of: pg_dump -Fc | pg_restore on 15; pg_upgrade to 18
# (copy mode, then no other step); pg_dump -Fc | pg_restore on 18; 15's
# dump restored by 18's pg_restore:
#   - the same columns and types, the same index definitions (valid),
#     the same rows (an md5 over every value in id order);
#   - identical top-10 (ids, in order) for the 100 queries x 3 opclasses x
#     (flat, IVF) and for code.search();
#   - the flat indexes equal a sequential scan (exactness), and after the
#     upgrade an inserted row is found through each index.
# KEEP_TMP=1 keeps the clusters and logs (in /tmp/codevec-pgupgrade.*).
# Ends with "N passed, N failed"; non-zero exit status on failure.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
passed=0; failed=0
ok() { passed=$((passed + 1)); echo "ok $((passed + failed)) - $1"; }
notok() { failed=$((failed + 1)); echo "not ok $((passed + failed)) - $1"; }
is() { if [ "$1" = "$2" ]; then ok "$3"; else notok "$3"; echo "#   got:  '$1'" | head -c 1500; echo; echo "#   want: '$2'" | head -c 1500; echo; fi; }
finish() { echo "$passed passed, $failed failed"; [ "$failed" -eq 0 ]; exit $?; }
# same FILE1 FILE2 DESCRIPTION: the two result files are equal and not empty
same() {
	if [ -s "$1" ] && cmp -s "$1" "$2"; then
		ok "$3 ($(wc -l <"$1") lines)"
	else
		notok "$3"
		diff "$1" "$2" | head -10 | sed 's/^/#   /'
	fi
}

OLD_PG_CONFIG=${OLD_PG_CONFIG:-/usr/bin/pg_config}
if [ -z "${NEW_PG_CONFIG:-}" ]; then
	NEW_PG_CONFIG=$(bash "$top/tools/install-pg18.sh") || { notok "PostgreSQL 18 installs (tools/install-pg18.sh)"; finish; }
fi
oldbin=$(PG_CONFIG=$OLD_PG_CONFIG bash "$top/test/cluster.sh" bindir)
newbin=$(PG_CONFIG=$NEW_PG_CONFIG bash "$top/test/cluster.sh" bindir)
oldver=$("$OLD_PG_CONFIG" --version); newver=$("$NEW_PG_CONFIG" --version)
echo "# old: $oldver ($oldbin)"
echo "# new: $newver ($newbin)"
version=$(sed -n 's/^EXTVERSION = //p' "$top/Makefile")
LOADER=${LOADER:-$top/loaders/codevec-load}
[ -x "$LOADER" ] || LOADER=$("$OLD_PG_CONFIG" --bindir)/codevec-load

tmp=$(mktemp -d /tmp/codevec-pgupgrade.XXXXXX)
chmod 755 "$tmp"
cleanup() {
	[ -n "${KEEP_TMP:-}" ] && { echo "# kept $tmp"; return; }
	PG_CONFIG=$OLD_PG_CONFIG bash "$top/test/cluster.sh" stop "$tmp/old" >/dev/null 2>&1
	PG_CONFIG=$NEW_PG_CONFIG bash "$top/test/cluster.sh" stop "$tmp/new" >/dev/null 2>&1
	rm -rf "$tmp"
}
trap cleanup EXIT

# codevec (this tree's version) and the default model in both servers
for pgc in "$OLD_PG_CONFIG" "$NEW_PG_CONFIG"; do
	ext=$("$pgc" --sharedir)/extension
	if ! grep -q "^default_version = '$version'" "$ext/codevec.control" 2>/dev/null \
		|| [ ! -f "$("$pgc" --pkglibdir)/codevec.so" ]; then
		echo "# codevec $version is not installed in $("$pgc" --version): installing a CPU-only build of this tree"
		rm -rf "$tmp/src" && mkdir -p "$tmp/src"
		git -C "$top" ls-files -z | (cd "$top" && xargs -0 cp --parents -t "$tmp/src")
		# the grammar sdists already downloaded (loaders/fetch-grammars.sh checks them)
		[ -d "$top/loaders/build/dl" ] && mkdir -p "$tmp/src/loaders/build" && cp -r "$top/loaders/build/dl" "$tmp/src/loaders/build/"
		if ! make -C "$tmp/src" PG_CONFIG="$pgc" CUDA=0 -j2 install >"$tmp/build.log" 2>&1; then
			tail -20 "$tmp/build.log"; notok "codevec $version builds and installs into $("$pgc" --version)"; finish
		fi
		[ -x "$LOADER" ] || LOADER=$tmp/src/loaders/codevec-load
	fi
	if [ ! -f "$ext/codevec_models/default/model.safetensors" ]; then
		PG_CONFIG=$pgc bash "$top/tools/fetch-model.sh" >"$tmp/model.log" 2>&1 || { tail -5 "$tmp/model.log"; notok "the default model installs into $("$pgc" --version)"; finish; }
	fi
done
[ -x "$LOADER" ] || { notok "codevec-load is built ($LOADER)"; finish; }

# free ports for the two clusters and pg_upgrade's own servers
free_port() { local p=$1; while [ -e "/tmp/.s.PGSQL.$p" ] || [ -e "/tmp/.s.PGSQL.$p.lock" ]; do p=$((p + 1)); done; echo "$p"; }
oldport=$(free_port 5661); newport=$(free_port $((oldport + 1)))

if [ "$(id -u)" = 0 ]; then
	as_user() { su -s /bin/sh codevec -c "$(printf '%q ' "$@")"; }
else
	as_user() { "$@"; }
fi

# psql as the new version's client (it talks to 15 as well)
export PGHOST=/tmp PGUSER=postgres
sql() { PGPORT=$1 "$newbin/psql" -qAtX -v ON_ERROR_STOP=1 -d "$2" "${@:3}"; }

# ------------------------------------------------------------ the old cluster
if ! PG_CONFIG=$OLD_PG_CONFIG bash "$top/test/cluster.sh" start "$tmp/old" "$oldport" >/dev/null; then
	notok "the old cluster starts"; finish
fi
sql "$oldport" postgres -c "CREATE DATABASE cvu" >/dev/null
sql "$oldport" cvu >/dev/null <<'SQL' || notok "the old database is filled"
CREATE EXTENSION codevec;
SELECT setseed(0.15);
CREATE TABLE items_flat (
	id int PRIMARY KEY,
	emb codevec(32),
	raw codevec,			-- no typmod
	many codevec[],
	tag text);
INSERT INTO items_flat
SELECT g, v, v, ARRAY[v, v], 'row ' || g
FROM (SELECT g, ARRAY(SELECT (random() - 0.5)::real FROM generate_series(1, 32) WHERE g > 0)::codevec(32) AS v
      FROM generate_series(1, 3000) g) s;
INSERT INTO items_flat VALUES (3001, NULL, '[1,2,3]', NULL, 'no vector');
CREATE TABLE items_ivf (LIKE items_flat INCLUDING ALL);
INSERT INTO items_ivf SELECT * FROM items_flat ORDER BY id;
CREATE TABLE queries AS
SELECT g AS qid, ARRAY(SELECT (random() - 0.5)::real FROM generate_series(1, 32) WHERE g > 0)::codevec(32) AS q
FROM generate_series(1, 100) g;
CREATE INDEX flat_l2 ON items_flat USING gpuivf (emb codevec_l2_ops);
CREATE INDEX flat_ip ON items_flat USING gpuivf (emb codevec_ip_ops);
CREATE INDEX flat_cos ON items_flat USING gpuivf (emb codevec_cosine_ops);
CREATE INDEX ivf_l2 ON items_ivf USING gpuivf (emb codevec_l2_ops) WITH (lists = 16);
CREATE INDEX ivf_ip ON items_ivf USING gpuivf (emb codevec_ip_ops) WITH (lists = 16);
CREATE INDEX ivf_cos ON items_ivf USING gpuivf (emb codevec_cosine_ops) WITH (lists = 16);
ANALYZE;
SQL

if PGPORT=$oldport "$LOADER" -q --no-embed -d cvu --repo fixtures "$top/test/loader/fixtures" >"$tmp/load.log" 2>&1 \
	&& PGPORT=$oldport "$LOADER" -q --no-embed -d cvu --repo loaders --exclude build "$top/loaders" >>"$tmp/load.log" 2>&1 \
	&& PGPORT=$oldport "$LOADER" -q --embed-only -d cvu >>"$tmp/load.log" 2>&1 \
	&& sql "$oldport" cvu -c "CREATE INDEX snippets_emb ON code.snippets USING gpuivf (emb codevec_cosine_ops)" -c "ANALYZE" >>"$tmp/load.log" 2>&1; then
	ok "codevec-load --no-embed, --embed-only and a gpuivf index on code.snippets ($(sql "$oldport" cvu -c "SELECT count(*) || ' snippets, ' || count(emb) || ' embedded' FROM code.snippets"))"
else
	notok "codevec-load --no-embed, --embed-only and a gpuivf index on code.snippets"; tail -20 "$tmp/load.log"
fi

# ------------------------------------------------------------ what is compared
# catalog PORT DB: columns with types, indexes with definitions and validity
catalog() {
	sql "$1" "$2" <<'SQL'
SELECT n.nspname || '.' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN ('public', 'code') AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT pg_get_indexdef(i.indexrelid) || CASE WHEN i.indisvalid AND i.indisready THEN ' valid' ELSE ' INVALID' END
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname IN ('public', 'code')
ORDER BY 1;
SQL
}

# rows PORT DB: an md5 per table over every value, in key order
rows() {
	sql "$1" "$2" <<'SQL'
SELECT 'items_flat ' || count(*) || ' ' || md5(string_agg(t::text, E'\n' ORDER BY id)) FROM items_flat t
UNION ALL SELECT 'items_ivf ' || count(*) || ' ' || md5(string_agg(t::text, E'\n' ORDER BY id)) FROM items_ivf t
UNION ALL SELECT 'queries ' || count(*) || ' ' || md5(string_agg(t::text, E'\n' ORDER BY qid)) FROM queries t
UNION ALL SELECT 'code.files ' || count(*) || ' ' || md5(string_agg(t::text, E'\n' ORDER BY id)) FROM code.files t
UNION ALL SELECT 'code.snippets ' || count(*) || ' ' || md5(string_agg(t::text, E'\n' ORDER BY id)) FROM code.snippets t;
SQL
}

# plans PORT DB: the scan each of the six queries gets with seq scans off
plans() {
	local tbl op
	for tbl in items_flat items_ivf; do
		for op in '<->' '<#>' '<=>'; do
			sql "$1" "$2" -c "SET enable_seqscan = off" -c "SET codevec.device = cpu" \
				-c "EXPLAIN (COSTS OFF) SELECT id FROM $tbl ORDER BY emb $op (SELECT q FROM queries WHERE qid = 1) LIMIT 10" |
				sed -n 's/.*\(Index Scan using [a-z_0-9]*\).*/\1/p' | tr '\n' ' '
		done
	done
	echo
}

# answers PORT DB [off]: top-10 ids of the 100 queries through each index
# ("off": with index scans off, the sequential scan's answer)
answers() {
	local guc="SET enable_seqscan = off"
	[ "${3:-}" = off ] && guc="SET enable_indexscan = off"
	sql "$1" "$2" -c "$guc" -c "SET codevec.device = cpu" -c "SET gpuivf.probes = 8" -f - <<'SQL'
SELECT t.tbl, o.op, q.qid, r.ids
FROM queries q,
     (VALUES ('items_flat'), ('items_ivf')) t(tbl),
     (VALUES ('<->'), ('<#>'), ('<=>')) o(op),
     LATERAL (SELECT CASE
        WHEN t.tbl = 'items_flat' AND o.op = '<->' THEN (SELECT array_agg(id) FROM (SELECT id FROM items_flat ORDER BY emb <-> q.q LIMIT 10) s)
        WHEN t.tbl = 'items_flat' AND o.op = '<#>' THEN (SELECT array_agg(id) FROM (SELECT id FROM items_flat ORDER BY emb <#> q.q LIMIT 10) s)
        WHEN t.tbl = 'items_flat' AND o.op = '<=>' THEN (SELECT array_agg(id) FROM (SELECT id FROM items_flat ORDER BY emb <=> q.q LIMIT 10) s)
        WHEN t.tbl = 'items_ivf' AND o.op = '<->' THEN (SELECT array_agg(id) FROM (SELECT id FROM items_ivf ORDER BY emb <-> q.q LIMIT 10) s)
        WHEN t.tbl = 'items_ivf' AND o.op = '<#>' THEN (SELECT array_agg(id) FROM (SELECT id FROM items_ivf ORDER BY emb <#> q.q LIMIT 10) s)
        ELSE (SELECT array_agg(id) FROM (SELECT id FROM items_ivf ORDER BY emb <=> q.q LIMIT 10) s)
     END AS ids) r
ORDER BY 1, 2, 3;
SQL
}

# searches PORT DB: code.search() top-10 ids of 12 questions in each mode
searches() {
	sql "$1" "$2" -c "SET client_min_messages = warning" -c "SET codevec.device = cpu" -f - <<'SQL'
SELECT m.mode, q.question, (SELECT array_agg(id) FROM code.search(q.question, k => 10, mode => m.mode))
FROM (VALUES ('parse a config file'), ('read lines from a file'), ('hash a string'),
             ('sort a list of numbers'), ('open a database connection'), ('print usage and exit'),
             ('walk a directory tree'), ('split a string into words'), ('binary search'),
             ('thread pool worker'), ('class with a constructor'), ('error handling')) q(question),
     (VALUES ('vector'), ('keyword'), ('hybrid')) m(mode)
ORDER BY 1, 2;
SQL
}

# snapshot PORT DB NAME: write every comparison's input to $tmp/NAME.*
snapshot() {
	catalog "$1" "$2" >"$tmp/$3.catalog" 2>&1
	rows "$1" "$2" >"$tmp/$3.rows" 2>&1
	plans "$1" "$2" >"$tmp/$3.plans" 2>&1
	answers "$1" "$2" >"$tmp/$3.answers" 2>&1
	searches "$1" "$2" >"$tmp/$3.searches" 2>&1
}

# compare NAME REF LABEL: NAME's snapshot against REF's
compare() {
	same "$tmp/$1.catalog" "$tmp/$2.catalog" "$3: the same columns, types and valid indexes"
	same "$tmp/$1.rows" "$tmp/$2.rows" "$3: the same rows (md5 per table)"
	is "$(cat "$tmp/$1.plans")" "$(cat "$tmp/$2.plans")" "$3: each query is an index scan of its index"
	same "$tmp/$1.answers" "$tmp/$2.answers" "$3: identical top-10 for 100 queries x 3 opclasses x (flat, IVF)"
	same "$tmp/$1.searches" "$tmp/$2.searches" "$3: identical code.search() top-10 (12 questions x 3 modes)"
}

snapshot "$oldport" cvu old
want_plans="Index Scan using flat_l2 Index Scan using flat_ip Index Scan using flat_cos Index Scan using ivf_l2 Index Scan using ivf_ip Index Scan using ivf_cos "
is "$(cat "$tmp/old.plans")" "$want_plans" "15: each query uses its gpuivf index"
is "$(grep -c '{' "$tmp/old.answers")" 600 "15: 600 top-10 answers"
is "$(grep -c '{' "$tmp/old.searches")" 36 "15: 36 code.search() answers"
is "$(grep -Ec '^items_flat.*\{([0-9]+,){9}[0-9]+\}$' "$tmp/old.answers")" 300 "15: every flat answer has 10 rows"
answers "$oldport" cvu off >"$tmp/old.seqscan"
grep '^items_flat' "$tmp/old.answers" >"$tmp/old.flat"
grep '^items_flat' "$tmp/old.seqscan" >"$tmp/old.seqflat"
same "$tmp/old.flat" "$tmp/old.seqflat" "15: the flat indexes return exactly the sequential scan's top-10"
# IVF is approximate: it must find most of the exact answer
recall=$(paste -d'|' <(grep '^items_ivf' "$tmp/old.answers") <(grep '^items_flat' "$tmp/old.seqscan") |
	awk -F'|' '{ split($4, a, /[{},]/); split($8, b, /[{},]/); for (i in b) if (b[i] != "") want[b[i]] = 1;
	             for (i in a) if (a[i] in want) hit++; total += 10; delete want } END { printf "%.3f", hit / total }')
if awk -v r="$recall" 'BEGIN { exit !(r >= 0.8) }'; then ok "15: IVF recall@10 with probes 8 of 16 lists is $recall (>= 0.8)"; else notok "15: IVF recall@10 $recall < 0.8"; fi

# ------------------------------------------------------------ dump/restore on 15
if "$oldbin/pg_dump" -h /tmp -p "$oldport" -U postgres -Fc -f "$tmp/cvu15.dump" cvu 2>"$tmp/dump15.err" \
	&& sql "$oldport" postgres -c "CREATE DATABASE cvu_r15" \
	&& "$oldbin/pg_restore" -h /tmp -p "$oldport" -U postgres --exit-on-error -d cvu_r15 "$tmp/cvu15.dump" 2>>"$tmp/dump15.err"; then
	ok "15: pg_dump -Fc and pg_restore run without errors"
else
	notok "15: pg_dump -Fc and pg_restore run without errors"; head -20 "$tmp/dump15.err"
fi
snapshot "$oldport" cvu_r15 r15
compare r15 old "15 dump/restore"

# ------------------------------------------------------------ pg_upgrade to 18
# 18's initdb turns data checksums on by default, 15's off: pg_upgrade
# needs them alike
if ! CLUSTER_INITDB_OPTS=--no-data-checksums PG_CONFIG=$NEW_PG_CONFIG bash "$top/test/cluster.sh" start "$tmp/new" "$newport" >/dev/null \
	|| ! PG_CONFIG=$NEW_PG_CONFIG bash "$top/test/cluster.sh" stop "$tmp/new"; then
	notok "the new cluster is made"; finish
fi
# Debian's 15.20 keeps a "pg_attver" entry in the attoptions of every
# column it creates; 18 (the PyPI build) does not know that option, and
# pg_upgrade's restore of any table (codevec's or not) fails on it
# (ERROR: unrecognized parameter "pg_attver"). ALTER TABLE ... RESET does
# not remove it, so it is taken out of pg_attribute before the upgrade
# (what a column made by an older 15.x looks like).
attver=$(sql "$oldport" cvu -c "SELECT count(*) FROM pg_attribute WHERE attrelid >= 16384 AND array_to_string(attoptions, ',') LIKE '%pg_attver=%'")
if [ "${attver:-0}" -gt 0 ] && ! grep -qa 'pg_attver' "$newbin/postgres"; then
	echo "# $oldver marks $attver columns of cvu with pg_attver, unknown to $newver: removed before pg_upgrade"
	for d in $(sql "$oldport" postgres -c "SELECT datname FROM pg_database WHERE datallowconn"); do
		sql "$oldport" "$d" -c "UPDATE pg_attribute SET attoptions = NULLIF(ARRAY(SELECT o FROM unnest(attoptions) o WHERE o NOT LIKE 'pg_attver=%'), '{}')
			WHERE attrelid >= 16384 AND array_to_string(attoptions, ',') LIKE '%pg_attver=%'" >/dev/null
	done
	is "$(sql "$oldport" cvu -c "SELECT count(*) FROM pg_attribute WHERE array_to_string(attoptions, ',') LIKE '%pg_attver=%' AND attrelid >= 16384")" 0 \
		"15: no column keeps a pg_attver option"
fi
PG_CONFIG=$OLD_PG_CONFIG bash "$top/test/cluster.sh" stop "$tmp/old"
mkdir -p "$tmp/upgrade"
[ "$(id -u)" = 0 ] && chown codevec "$tmp/upgrade"
start=$(date +%s.%N)
if (cd "$tmp/upgrade" && as_user "$newbin/pg_upgrade" -b "$oldbin" -B "$newbin" -d "$tmp/old/data" -D "$tmp/new/data" \
		-U postgres -p "$oldport" -P "$newport" --socketdir "$tmp/upgrade") >"$tmp/upgrade.log" 2>&1; then
	ok "pg_upgrade from $oldver to $newver ($(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f s", e - s }'))"
else
	notok "pg_upgrade from $oldver to $newver"; tail -8 "$tmp/upgrade.log"
	# the log pg_upgrade names ("Consult the last few lines of ...")
	failed_log=$(sed -n 's/.*Consult the last few lines of "\([^"]*\)".*/\1/p' "$tmp/upgrade.log" | head -1)
	[ -n "$failed_log" ] && tail -20 "$failed_log" | sed 's/^/#   /'
	finish
fi
# the steps pg_upgrade asks for afterwards: only statistics, never a REINDEX
if grep -qi reindex "$tmp/upgrade.log" || ls "$tmp/upgrade"/*.sql "$tmp/new/data"/*.sql >/dev/null 2>&1; then
	notok "pg_upgrade asks for no REINDEX or script"; grep -i -B2 -A2 reindex "$tmp/upgrade.log" | head
else
	ok "pg_upgrade asks for no REINDEX or script (gpuivf pages are copied as they are)"
fi
if ! PG_CONFIG=$NEW_PG_CONFIG bash "$top/test/cluster.sh" start "$tmp/new" "$newport" >/dev/null; then
	notok "the upgraded cluster starts"; finish
fi
is "$(sql "$newport" cvu -c "SELECT extversion FROM pg_extension WHERE extname = 'codevec'")" "$version" "18: codevec $version after pg_upgrade"
snapshot "$newport" cvu up
compare up old "pg_upgrade 15 -> 18"
answers "$newport" cvu off | grep '^items_flat' >"$tmp/up.seqflat"
same "$tmp/up.seqflat" "$tmp/old.seqflat" "18 after pg_upgrade: the sequential scan's top-10 is 15's"

# the upgraded indexes take inserts: a copy of each query's vector is found
# first through every index
sql "$newport" cvu -c "INSERT INTO items_flat (id, emb, tag) SELECT 10000 + qid, q, 'copy' FROM queries WHERE qid <= 5" \
	-c "INSERT INTO items_ivf (id, emb, tag) SELECT 10000 + qid, q, 'copy' FROM queries WHERE qid <= 5" >/dev/null
got=$(sql "$newport" cvu -c "SET enable_seqscan = off" -c "SET gpuivf.probes = 8" -f - <<'SQL'
SELECT count(*) FILTER (WHERE a = 10000 + qid) || ' of ' || count(*)
FROM queries q, LATERAL (VALUES
	((SELECT id FROM items_flat ORDER BY emb <-> q.q LIMIT 1)), ((SELECT id FROM items_flat ORDER BY emb <#> q.q LIMIT 1)),
	((SELECT id FROM items_flat ORDER BY emb <=> q.q LIMIT 1)), ((SELECT id FROM items_ivf ORDER BY emb <-> q.q LIMIT 1)),
	((SELECT id FROM items_ivf ORDER BY emb <#> q.q LIMIT 1)), ((SELECT id FROM items_ivf ORDER BY emb <=> q.q LIMIT 1))) v(a)
WHERE qid <= 5;
SQL
)
is "$got" "30 of 30" "18 after pg_upgrade: rows inserted afterwards are found first through all six indexes"
sql "$newport" cvu -c "DELETE FROM items_flat WHERE id > 10000" -c "DELETE FROM items_ivf WHERE id > 10000" -c "VACUUM items_flat, items_ivf" >/dev/null
answers "$newport" cvu >"$tmp/up2.answers"
same "$tmp/up2.answers" "$tmp/old.answers" "18 after pg_upgrade: DELETE and VACUUM of those rows gives the old answers back"

# ------------------------------------------------------------ dump/restore on 18
if "$newbin/pg_dump" -h /tmp -p "$newport" -U postgres -Fc -f "$tmp/cvu18.dump" cvu 2>"$tmp/dump18.err" \
	&& sql "$newport" postgres -c "CREATE DATABASE cvu_r18" \
	&& "$newbin/pg_restore" -h /tmp -p "$newport" -U postgres --exit-on-error -d cvu_r18 "$tmp/cvu18.dump" 2>>"$tmp/dump18.err"; then
	ok "18: pg_dump -Fc and pg_restore run without errors"
else
	notok "18: pg_dump -Fc and pg_restore run without errors"; head -20 "$tmp/dump18.err"
fi
snapshot "$newport" cvu_r18 r18
compare r18 old "18 dump/restore"

# ------------------------------------------------------------ 15's dump into 18
if sql "$newport" postgres -c "CREATE DATABASE cvu_x" \
	&& "$newbin/pg_restore" -h /tmp -p "$newport" -U postgres --exit-on-error -d cvu_x "$tmp/cvu15.dump" 2>"$tmp/restorex.err"; then
	ok "15's pg_dump -Fc restores into 18 without errors"
else
	notok "15's pg_dump -Fc restores into 18 without errors"; head -20 "$tmp/restorex.err"
fi
snapshot "$newport" cvu_x x
compare x old "15 dump -> 18 restore"

finish
