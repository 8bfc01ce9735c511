#!/usr/bin/env bash
# test/upgrade/run.sh — extension upgrades: ALTER EXTENSION codevec UPDATE
# from every earlier release against a fresh install of the current one.
#
# Needs the PG* variables of a running server where codevec is installed
# (test/run.sh provides them). For each earlier release R whose install
# script is installed (sql/codevec--R.sql, kept as released):
#   - a database gets CREATE EXTENSION codevec VERSION 'R', a table of
#     vectors with a flat and an IVF gpuivf index (three opclasses), and the
#     top-10 of 20 queries through each index is recorded;
#   - ALTER EXTENSION codevec UPDATE brings it to the default version;
#   - the same queries return the same rows in the same order, the indexes
#     still answer after inserts, and the extension's objects (identity,
#     signature, result type, comment) equal those of a fresh install.
# Ends with "N passed, N failed"; non-zero exit status on failure.
set -uo pipefail
passed=0; failed=0
ok() { passed=$((passed + 1)); echo "ok $((passed + failed)) - $1"; }
notok() { failed=$((failed + 1)); echo "not ok $((passed + failed)) - $1"; }
is() { if [ "$1" = "$2" ]; then ok "$3"; else notok "$3"; echo "#   got:  '$1'"; echo "#   want: '$2'"; fi; }

maint=${PGDATABASE:-postgres}
sharedir=$(pg_config --sharedir)/extension
current=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$sharedir/codevec.control")
olds=$(ls "$sharedir" | sed -n 's/^codevec--\([0-9.]*\)\.sql$/\1/p' | grep -vx "$current" | sort -V)
[ -n "$current" ] && ok "the installed control file names a default version ($current)" \
	|| notok "the installed control file names a default version"
[ -n "$olds" ] && ok "earlier releases' install scripts are installed: $(echo $olds)" \
	|| notok "earlier releases' install scripts are installed"

db() { psql -qAtX -v ON_ERROR_STOP=1 -d "$1" "${@:2}"; }
cleanup() { for d in cv_upg_old cv_upg_new; do psql -qX -d "$maint" -c "DROP DATABASE IF EXISTS $d" >/dev/null 2>&1; done; }
trap cleanup EXIT

# the extension's objects: identity, signature / result for routines, comment
objects() {
	db "$1" <<'SQL'
SELECT pg_describe_object(d.classid, d.objid, d.objsubid)
       || coalesce(' -> ' || pg_get_function_result(p.oid), '')
       || coalesce(' (' || pg_get_function_arguments(p.oid) || ')', '')
       || ' | ' || coalesce(obj_description(d.objid, (SELECT relname FROM pg_class WHERE oid = d.classid)::name), '')
FROM pg_depend d
LEFT JOIN pg_proc p ON d.classid = 'pg_proc'::regclass AND p.oid = d.objid
WHERE d.refclassid = 'pg_extension'::regclass
  AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'codevec')
  AND d.deptype = 'e'
ORDER BY 1;
SQL
}

# top-10 ids of 20 queries through each index (index scans forced)
answers() {
	db "$1" <<'SQL'
SET enable_seqscan = off; SET codevec.device = cpu; SET gpuivf.probes = 2;
SELECT q.qid, op, array_agg(id ORDER BY rk)
FROM uq q, LATERAL (
	SELECT '<->' AS op, id, row_number() OVER () AS rk FROM (SELECT id FROM ut ORDER BY emb <-> q.emb LIMIT 10) s
	UNION ALL SELECT '<#>', id, row_number() OVER () FROM (SELECT id FROM ut ORDER BY emb <#> q.emb LIMIT 10) s
	UNION ALL SELECT '<=>', id, row_number() OVER () FROM (SELECT id FROM ut ORDER BY emb <=> q.emb LIMIT 10) s) r
GROUP BY q.qid, op ORDER BY 1, 2;
SQL
}

for old in $olds; do
	cleanup
	psql -qX -d "$maint" -c "CREATE DATABASE cv_upg_old" -c "CREATE DATABASE cv_upg_new" >/dev/null
	db cv_upg_old -c "CREATE EXTENSION codevec VERSION '$old'"
	is "$(db cv_upg_old -c "SELECT extversion FROM pg_extension WHERE extname = 'codevec'")" "$old" \
		"$old: installed at version $old"
	db cv_upg_old >/dev/null <<'SQL'
SELECT setseed(0.42);
CREATE TABLE ut (id int PRIMARY KEY, emb codevec(16));
INSERT INTO ut SELECT g, ARRAY(SELECT (random() - 0.5)::real FROM generate_series(1, 16) WHERE g > 0)::codevec(16)
FROM generate_series(1, 3000) g;
CREATE TABLE uq AS SELECT id AS qid, (SELECT array_agg(x + 0.01)::codevec(16) FROM unnest(emb::real[]) x) AS emb FROM ut WHERE id <= 20;
CREATE INDEX ut_l2 ON ut USING gpuivf (emb codevec_l2_ops);
CREATE INDEX ut_ip ON ut USING gpuivf (emb codevec_ip_ops) WITH (lists = 8);
CREATE INDEX ut_cos ON ut USING gpuivf (emb codevec_cosine_ops) WITH (lists = 8);
ANALYZE ut;
SQL
	before=$(answers cv_upg_old)
	[ "$(printf '%s\n' "$before" | wc -l)" = 60 ] && ok "$old: 20 queries x 3 opclasses answered before the update" \
		|| notok "$old: 20 queries x 3 opclasses answered before the update ($(printf '%s\n' "$before" | wc -l) rows)"
	if db cv_upg_old -c "ALTER EXTENSION codevec UPDATE" 2>/tmp/cv-upg.err; then
		ok "$old: ALTER EXTENSION codevec UPDATE"
	else
		notok "$old: ALTER EXTENSION codevec UPDATE"; sed 's/^/#   /' /tmp/cv-upg.err
	fi
	is "$(db cv_upg_old -c "SELECT extversion FROM pg_extension WHERE extname = 'codevec'")" "$current" \
		"$old: now at version $current"
	after=$(answers cv_upg_old)
	is "$after" "$before" "$old -> $current: the same top-10 through each index (flat l2, IVF ip and cosine)"
	flat=$(printf '%s\n' "$after" | grep -c '|<->|')
	seqflat=$(db cv_upg_old -c "SET enable_indexscan = off; SET enable_bitmapscan = off;
		SELECT q.qid || '|<->|' || (SELECT array_agg(id)::text FROM (SELECT id FROM ut ORDER BY emb <-> q.emb, ctid LIMIT 10) s)
		FROM uq q ORDER BY q.qid")
	is "$(printf '%s\n' "$after" | grep '|<->|')" "$seqflat" "$old -> $current: the flat index equals the sequential scan ($flat queries)"
	db cv_upg_old -c "INSERT INTO ut SELECT 100000 + qid, emb FROM uq" >/dev/null
	is "$(db cv_upg_old -c "SET enable_seqscan = off; SET codevec.device = cpu; SELECT id FROM ut ORDER BY emb <-> (SELECT emb FROM uq WHERE qid = 7) LIMIT 1")" \
		100007 "$old -> $current: inserts after the update are found through the index"
	is "$(db cv_upg_old -c "SELECT fallbacks >= 0 AND state IS NOT NULL FROM codevec_gpu_status()" 2>&1)" t \
		"$old -> $current: codevec_gpu_status() has the 0.2.0 column fallbacks"
	db cv_upg_new -c "CREATE EXTENSION codevec"
	objects cv_upg_old >/tmp/cv-upg-old.txt
	objects cv_upg_new >/tmp/cv-upg-new.txt
	n=$(wc -l </tmp/cv-upg-new.txt)
	if [ "$n" -gt 50 ] && cmp -s /tmp/cv-upg-old.txt /tmp/cv-upg-new.txt; then
		ok "$old -> $current: the updated extension's $n objects equal a fresh install's (signatures, results, comments)"
	else
		notok "$old -> $current: the updated extension's objects equal a fresh install's ($n objects)"
		diff /tmp/cv-upg-old.txt /tmp/cv-upg-new.txt | head -20 | sed 's/^/#   /'
	fi
	rm -f /tmp/cv-upg-old.txt /tmp/cv-upg-new.txt /tmp/cv-upg.err
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
