#!/usr/bin/env bash
# test/pgvector/run.sh — codevec_pgvector: the gpuivf index on pgvector's own
# columns, and the casts between codevec and pgvector's types.
#
#   bash test/pgvector/run.sh                          with the PG* of a running
#                                                      server (test/run.sh's cluster)
#   CODEVEC_DEVICE=cuda bash test/pgvector/run.sh      the same checks answered by
#                                                      the GPU service (the H200 host)
#
# For every opclass (vector_cosine_ops, vector_l2_ops, vector_ip_ops and,
# where the server has halfvec, halfvec_cosine_ops, halfvec_l2_ops,
# halfvec_ip_ops) the gpuivf index must return exactly the rows, order and
# distances (as text: float8 prints the shortest exact form, so equal text
# is equal bits) of pgvector's own sequential scan ORDER BY emb <op> q,
# ctid, on data with many exact ties, zero vectors and NULLs: after the
# build, after inserts, deletes and VACUUM, and for an IVF index probing
# every list. Casts must round-trip bit for bit (send/recv bytes).
# pg_dump / pg_restore of a table with an HNSW and a gpuivf index must give
# both indexes back, answering as before.
#
# Needs codevec installed, and pgvector (vector.control) in the server's
# share directory: without it the suite is one skip. Makes (and drops) its
# own databases. Ends with "N passed, N failed, N skipped".
set -uo pipefail
db=codevec_pgvector_test
db2=codevec_pgvector_restored
device=${CODEVEC_DEVICE:-cpu}
passed=0; failed=0; skipped=0
work=$(mktemp -d /tmp/codevec-pgvector.XXXXXX)
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT

ok() { passed=$((passed + 1)); echo "ok $((passed + failed + skipped)) - $1"; }
notok() { failed=$((failed + 1)); echo "not ok $((passed + failed + skipped)) - $1"; }
skip() { skipped=$((skipped + 1)); echo "ok $((passed + failed + skipped)) # SKIP $1"; }
finish() { echo "$passed passed, $failed failed, $skipped skipped"; [ "$failed" -eq 0 ]; exit; }

# q SQL...: run in the test database with the scan settings, values only
q() {
	local args=()
	for s in "$@"; do args+=(-c "$s"); done
	PGOPTIONS="-c codevec.device=$device -c client_min_messages=warning ${QOPTS:-}" \
		psql -qAtX -v ON_ERROR_STOP=1 -d "${QDB:-$db}" "${args[@]}" 2>&1
}

# check DESCRIPTION GOT WANT
check() {
	if [ "$2" = "$3" ]; then ok "$1"; else notok "$1 (got '$2', want '$3')"; fi
}

avail=$(psql -qAtX -d postgres -c "SELECT count(*) FROM pg_available_extensions WHERE name IN ('vector', 'codevec_pgvector')" 2>&1)
if [ "$avail" != 2 ]; then
	skip "pgvector or codevec_pgvector is not installed for this server ($(psql -qAtX -d postgres -c 'SHOW server_version' 2>&1)): nothing to test"
	finish
fi

psql -qX -d postgres -c "DROP DATABASE IF EXISTS $db" -c "DROP DATABASE IF EXISTS $db2" -c "CREATE DATABASE $db" >/dev/null 2>&1
out=$(q "CREATE EXTENSION codevec_pgvector CASCADE" "SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension WHERE extname <> 'plpgsql'")
check "CREATE EXTENSION codevec_pgvector CASCADE brings codevec and vector" "$out" "codevec,codevec_pgvector,vector"
pgv=$(q "SELECT extversion FROM pg_extension WHERE extname = 'vector'")
echo "# pgvector $pgv, $(q 'SHOW server_version'), codevec.device = $device"
halfvec=$(q "SELECT count(*) FROM pg_opclass c JOIN pg_am a ON a.oid = c.opcmethod WHERE a.amname = 'gpuivf' AND c.opcname LIKE 'halfvec%'")

# --- casts -------------------------------------------------------------------
q "CREATE TABLE c (id int, cv codevec(8))" \
  "INSERT INTO c SELECT i, ARRAY(SELECT (random() - 0.5) * (10 ^ (random() * 40 - 20)) FROM generate_series(1, 8) j WHERE i > 0)::real[]::codevec FROM generate_series(1, 500) i" \
  "INSERT INTO c VALUES (501, '[3.4028235e+38,-3.4028235e+38,1e-45,-1e-45,0,-0,1,-1]')" >/dev/null
check "codevec -> vector -> codevec: the same bytes (500 random floats over 40 decades, extremes, -0)" \
	"$(q "SELECT count(*) FROM c WHERE codevec_send(cv::vector::codevec) <> codevec_send(cv) OR vector_send(cv::vector) <> codevec_send(cv)")" 0
check "codevec -> vector keeps the text form" \
	"$(q "SELECT count(*) FROM c WHERE cv::vector::text <> cv::text")" 0
check "vector -> codevec of pgvector's own input: the same bytes" \
	"$(q "SELECT count(*) FROM c WHERE codevec_send(cv::text::vector::codevec) <> vector_send(cv::text::vector)")" 0
check "the casts are binary coercible (no function, no copy)" \
	"$(q "SELECT string_agg(castmethod::text || castcontext::text, ',' ORDER BY castsource::regtype::text) FROM pg_cast WHERE (castsource, casttarget) IN (('codevec'::regtype, 'vector'::regtype), ('vector'::regtype, 'codevec'::regtype))")" "ba,ba"
check "assignment: INSERT of a codevec into vector(8) and of a vector into codevec(8)" \
	"$(q "CREATE TABLE ca (v vector(8), cv codevec(8))" "INSERT INTO ca (v, cv) SELECT cv, cv::vector FROM c" "SELECT count(*) FROM ca JOIN c ON c.cv::text = ca.v::text AND ca.cv::text = c.cv::text")" 501
check "typmod: codevec(8) into vector(4) is pgvector's error 22000" \
	"$(q "\\set VERBOSITY sqlstate" "CREATE TABLE cb (v vector(4))" "INSERT INTO cb SELECT cv FROM c LIMIT 1" 2>&1 | tail -1)" "ERROR:  22000"
check "typmod: vector(8) into codevec(4) is codevec's error 22000" \
	"$(q "\\set VERBOSITY sqlstate" "CREATE TABLE cd (cv codevec(4))" "INSERT INTO cd SELECT cv::vector FROM c LIMIT 1" 2>&1 | tail -1)" "ERROR:  22000"
check "mixing the types without a cast is an error, not a silent choice (42883)" \
	"$(q "\\set VERBOSITY sqlstate" "SELECT cv <=> cv::vector FROM c LIMIT 1" 2>&1 | tail -1)" "ERROR:  42883"
if [ "$halfvec" -gt 0 ]; then
	# rows whose elements all fit binary16 (the others: pgvector's own range error)
	fit="(SELECT bool_and(abs(x) < 65504) FROM unnest(cv::real[]) x)"
	check "halfvec -> codevec is exact (the values of pgvector's halfvec -> vector), $(q "SELECT count(*) FROM c WHERE $fit") rows with subnormal and rounded elements" \
		"$(q "SELECT count(*) FROM (SELECT cv FROM c WHERE $fit OFFSET 0) c WHERE (cv::vector::halfvec)::codevec::text <> (cv::vector::halfvec)::vector::text" 2>&1)" 0
	check "codevec -> halfvec rounds as pgvector's vector -> halfvec does" \
		"$(q "SELECT count(*) FROM (SELECT cv FROM c WHERE $fit OFFSET 0) c WHERE cv::halfvec::text <> cv::vector::halfvec::text" 2>&1)" 0
	check "codevec -> halfvec past 65504 is pgvector's error 22003" \
		"$(q "\\set VERBOSITY sqlstate" "SELECT '[70000]'::codevec::halfvec" 2>&1 | tail -1)" "ERROR:  22003"
fi
if q "SELECT embed('x') IS NOT NULL" >/dev/null 2>&1 && [ "$(q "SELECT embed('x') IS NOT NULL")" = t ]; then
	check "INSERT INTO items (embedding) SELECT embed(body): vector(384) holds embed()'s bits" \
		"$(q "CREATE TABLE e (id int, body text, embedding vector(384))" \
		     "INSERT INTO e (id, body) VALUES (1, 'parse a config file'), (2, 'open a socket'), (3, 'sort a list')" \
		     "UPDATE e SET embedding = embed(body)" \
		     "SELECT count(*) FROM e WHERE vector_send(embedding) = codevec_send(embed(body))")" 3
	check "ORDER BY embedding <=> embed('q')::vector: the nearest is the body asked for" \
		"$(q "SELECT id FROM e ORDER BY embedding <=> embed('read the configuration file')::vector LIMIT 1")" 1
else
	skip "embed(): no encoder model installed (make model)"
fi

# --- the index against pgvector's sequential scan ----------------------------
# 3,000 rows of 16 dimensions, elements from {-2, -1.5, ..., 2} (many
# exact distance ties), 30 duplicated rows, 5 zero vectors (cosine NaN),
# 5 NULLs; queries: 12 random, one a row's duplicate, one zero vector
q "CREATE TABLE src (id int PRIMARY KEY, v real[])" \
  "SELECT setseed(0.24)" \
  "INSERT INTO src SELECT i, ARRAY(SELECT round((random() * 8 - 4))::real / 2 FROM generate_series(1, 16) j WHERE i > 0) FROM generate_series(1, 3000) i" \
  "UPDATE src SET v = (SELECT v FROM src s WHERE s.id = src.id - 1000) WHERE id BETWEEN 1001 AND 1030" \
  "UPDATE src SET v = array_fill(0::real, ARRAY[16]) WHERE id IN (7, 70, 700, 1700, 2700)" \
  "UPDATE src SET v = NULL WHERE id IN (8, 80, 800, 1800, 2800)" \
  "CREATE TABLE qs (qid int, v real[])" \
  "INSERT INTO qs SELECT i, ARRAY(SELECT round((random() * 8 - 4))::real / 2 FROM generate_series(1, 16) j WHERE i > 0) FROM generate_series(1, 12) i" \
  "INSERT INTO qs SELECT 13, v FROM src WHERE id = 5" \
  "INSERT INTO qs VALUES (14, array_fill(0::real, ARRAY[16]))" >/dev/null

# compare TYPE OP INDEXNAME WHAT: every query's whole order through the
# index (plan checked) against the sequential scan ORDER BY emb OP q, ctid
# of the rows with a vector (NULL vectors are not indexed, as in pgvector's
# HNSW and IVFFlat: an index scan without LIMIT does not return them)
compare() {
	local type=$1 op=$2 idx=$3 what=$4 plan bad
	plan=$(q "SET enable_seqscan = off" "EXPLAIN (COSTS OFF) SELECT id FROM items_$type ORDER BY emb $op (SELECT v::$type FROM qs WHERE qid = 1) LIMIT 5")
	# (a here-string, not printf | grep -q: under pipefail grep's early exit
	# can fail the pipeline with SIGPIPE)
	if ! grep -q "Index Scan using $idx" <<<"$plan"; then
		notok "$type $op $what: the plan does not use $idx"; printf '%s\n' "$plan" | sed 's/^/#   /'
		return
	fi
	for qid in $(seq 1 14); do
		q "SET enable_seqscan = off" \
		  "SELECT id || ' ' || (emb $op (SELECT v::$type FROM qs WHERE qid = $qid))::text FROM (SELECT id, emb FROM items_$type ORDER BY emb $op (SELECT v::$type FROM qs WHERE qid = $qid)) s" >"$work/index.$qid"
		q "SET enable_indexscan = off" "SET enable_bitmapscan = off" \
		  "SELECT id || ' ' || (emb $op (SELECT v::$type FROM qs WHERE qid = $qid))::text FROM (SELECT id, emb FROM items_$type WHERE emb IS NOT NULL ORDER BY emb $op (SELECT v::$type FROM qs WHERE qid = $qid), ctid) s" >"$work/seq.$qid"
	done
	bad=0
	for qid in $(seq 1 14); do
		cmp -s "$work/index.$qid" "$work/seq.$qid" || { bad=$((bad + 1)); [ "$bad" = 1 ] && diff "$work/index.$qid" "$work/seq.$qid" | head -6 | sed 's/^/#   /'; }
	done
	rows=$(wc -l <"$work/seq.1")
	# rows whose distance equals the previous row's: the order among them is the tie-break
	ties=$(cat "$work"/seq.* | awk '{ if ($2 == prev) n++; prev = $2 } END { print n + 0 }')
	check "$type $op $what: 14 queries, all $rows rows in the order and distances of pgvector's sequential scan ($ties rows tied with the one before)" "$bad mismatches" "0 mismatches"
}

types="vector"
[ "$halfvec" -gt 0 ] && types="vector halfvec"
for type in $types; do
	for m in "cosine <=>" "l2 <->" "ip <#>"; do
		ops=${m%% *}; op=${m##* }
		idx="items_${type}_${ops}"
		q "DROP TABLE IF EXISTS items_$type" \
		  "CREATE TABLE items_$type (id int, emb $type(16))" \
		  "INSERT INTO items_$type SELECT id, v::$type FROM src ORDER BY id" \
		  "VACUUM ANALYZE items_$type" >/dev/null
		out=$(q "CREATE INDEX $idx ON items_$type USING gpuivf (emb ${type}_${ops}_ops)")
		check "CREATE INDEX ... USING gpuivf (emb ${type}_${ops}_ops)" "$out" ""
		compare "$type" "$op" "$idx" "after the build"
		# inserts (duplicates of existing rows and new ones), deletes, VACUUM
		q "INSERT INTO items_$type SELECT id + 10000, v::$type FROM src WHERE id % 5 = 0" \
		  "DELETE FROM items_$type WHERE id % 7 = 0" \
		  "VACUUM items_$type" \
		  "INSERT INTO items_$type SELECT id + 20000, v::$type FROM src WHERE id % 11 = 0" \
		  "DELETE FROM items_$type WHERE id % 13 = 0 AND id > 10000" \
		  "ANALYZE items_$type" >/dev/null
		compare "$type" "$op" "$idx" "after inserts, deletes and VACUUM"
		check "$type $op: the ctid order differs from the id order now (ties are broken by ctid, as the seqscan reference says)" \
			"$(q "SELECT count(*) > 0 FROM (SELECT id, lag(id) OVER (ORDER BY ctid) AS prev FROM items_$type) s WHERE id < prev")" t
		# an IVF index probing every list is exact too
		q "DROP INDEX $idx" "CREATE INDEX $idx ON items_$type USING gpuivf (emb ${type}_${ops}_ops) WITH (lists = 8)" >/dev/null
		QOPTS="-c gpuivf.probes=8" compare "$type" "$op" "$idx" "IVF lists = 8, probes = 8"
	done
done
# --- every finite binary16 value through an IVF build ------------------------
# An IVF build reads each halfvec as float4 and writes it back as binary16
# (src/vecelem.h), and the GPU path rebuilds candidates the same way: with
# all 63,488 finite binary16 values (subnormals, -0, 65504) as elements,
# the index must still give pgvector's sequential scan bit for bit.
if [ "$halfvec" -gt 0 ]; then
	python3 - "$work/halves.tsv" <<'PY'
import struct, sys
vals = []
for bits in range(65536):
    if (bits >> 10) & 0x1f == 0x1f:
        continue                                  # infinity, NaN: not allowed in halfvec
    v = struct.unpack("<e", struct.pack("<H", bits))[0]
    vals.append("-0" if bits == 0x8000 else repr(v))
with open(sys.argv[1], "w") as o:
    for i in range(0, len(vals), 16):
        o.write(f"{i // 16 + 1}\t[{','.join(vals[i:i + 16])}]\n")
PY
	q "DROP TABLE IF EXISTS items_halfvec" "CREATE TABLE items_halfvec (id int, emb halfvec(16))" \
	  "\\copy items_halfvec FROM '$work/halves.tsv'" "ANALYZE items_halfvec" >/dev/null
	check "all 63,488 finite binary16 values loaded, each once (-0 apart from 0)" \
		"$(q "SELECT count(*), count(DISTINCT x::text) FROM items_halfvec, unnest(emb::real[]) x")" "63488|63488"
	for m in "l2 <->" "ip <#>" "cosine <=>"; do
		ops=${m%% *}; op=${m##* }
		q "DROP INDEX IF EXISTS items_halfvec_$ops" "CREATE INDEX items_halfvec_$ops ON items_halfvec USING gpuivf (emb halfvec_${ops}_ops) WITH (lists = 4)" >/dev/null
		QOPTS="-c gpuivf.probes=4" compare halfvec "$op" "items_halfvec_$ops" "every finite binary16 value, IVF lists = 4, probes = 4"
		q "DROP INDEX items_halfvec_$ops" "CREATE INDEX items_halfvec_$ops ON items_halfvec USING gpuivf (emb halfvec_${ops}_ops)" >/dev/null
		compare halfvec "$op" "items_halfvec_$ops" "every finite binary16 value, flat"
		q "DROP INDEX items_halfvec_$ops" >/dev/null
	done
fi

# --- pg_dump / pg_restore of a table with an HNSW and a gpuivf index ---------
q "CREATE TABLE docs (id int PRIMARY KEY, emb vector(16))" \
  "INSERT INTO docs SELECT id, v::vector FROM src WHERE v IS NOT NULL" \
  "CREATE INDEX docs_hnsw ON docs USING hnsw (emb vector_cosine_ops)" \
  "CREATE INDEX docs_gpuivf ON docs USING gpuivf (emb vector_cosine_ops)" \
  "CREATE INDEX docs_gpuivf_l2 ON docs USING gpuivf (emb vector_l2_ops) WITH (lists = 4)" >/dev/null
defs="SELECT string_agg(indexdef, E'\\n' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'docs'"
before_defs=$(q "$defs")
if pg_dump -Fc -d "$db" -f "$work/dump" 2>"$work/dump.err"; then
	ok "pg_dump of a database with codevec_pgvector, an HNSW and two gpuivf indexes on one vector column"
else
	notok "pg_dump failed: $(head -3 "$work/dump.err")"
fi
psql -qX -d postgres -c "CREATE DATABASE $db2" >/dev/null
pg_restore -d "$db2" --exit-on-error "$work/dump" >"$work/restore.log" 2>&1
check "pg_restore into a new database: no errors" "$?: $(head -3 "$work/restore.log")" "0: "
check "restored: the same three index definitions (hnsw and gpuivf vector_cosine_ops, gpuivf vector_l2_ops)" \
	"$(QDB=$db2 q "$defs")" "$before_defs"
# one index at a time (the others dropped inside a transaction rolled back)
only() {	# only DB KEEP-INDEX OP QID [settings]: the first 20 ids and distances through KEEP-INDEX
	local d=$1 keep=$2 op=$3 qid=$4; shift 4
	local drops=()
	for i in docs_hnsw docs_gpuivf docs_gpuivf_l2; do [ "$i" = "$keep" ] || drops+=("DROP INDEX $i"); done
	QDB=$d q "BEGIN" "${drops[@]}" "SET enable_seqscan = off" "$@" \
		"EXPLAIN (COSTS OFF) SELECT id FROM docs ORDER BY emb $op (SELECT v::vector FROM qs WHERE qid = $qid) LIMIT 20" \
		"SELECT string_agg(id || ' ' || d, ',') FROM (SELECT id, (emb $op (SELECT v::vector FROM qs WHERE qid = $qid))::text AS d FROM docs ORDER BY emb $op (SELECT v::vector FROM qs WHERE qid = $qid) LIMIT 20) s" \
		"ROLLBACK" | awk '/Index Scan using/ { for (i = 1; i < NF; i++) if ($i == "using") print "[" $(i + 1) "]" } /^[0-9]/ { print }'
}
seqref() {	# seqref OP QID: the sequential scan's first 20, ties by ctid
	q "SET enable_indexscan = off" "SET enable_bitmapscan = off" \
	  "SELECT string_agg(id || ' ' || d, ',') FROM (SELECT id, (emb $1 (SELECT v::vector FROM qs WHERE qid = $2))::text AS d FROM docs ORDER BY emb $1 (SELECT v::vector FROM qs WHERE qid = $2), ctid LIMIT 20) s"
}
check "restored: the gpuivf index answers as before the dump and as the sequential scan (ids, distances)" \
	"$(only "$db2" docs_gpuivf '<=>' 3 | tr '\n' ' ')" "[docs_gpuivf] $(seqref '<=>' 3) "
check "before the dump: the same" "$(only "$db" docs_gpuivf '<=>' 3 | tr '\n' ' ')" "[docs_gpuivf] $(seqref '<=>' 3) "
# HNSW is approximate, and ties may come in another order after a rebuild:
# its distances, in order, are compared
check "restored: the HNSW index gives the same distances (ef_search 1000) as before the dump" \
	"$(only "$db2" docs_hnsw '<=>' 3 "SET hnsw.ef_search = 1000" | sed 's/[0-9]* \([^,]*\)/\1/g' | tr '\n' ' ')" \
	"$(only "$db" docs_hnsw '<=>' 3 "SET hnsw.ef_search = 1000" | sed 's/[0-9]* \([^,]*\)/\1/g' | tr '\n' ' ')"
check "restored: the IVF index (lists = 4) answers like the sequential scan at probes = lists" \
	"$(QOPTS="-c gpuivf.probes=4" only "$db2" docs_gpuivf_l2 '<->' 4 | tr '\n' ' ')" "[docs_gpuivf_l2] $(seqref '<->' 4) "
psql -qX -d postgres -c "DROP DATABASE IF EXISTS $db2" -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
finish
