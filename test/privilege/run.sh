#!/usr/bin/env bash
# test/privilege/run.sh — least privilege (issue 17, item 4).
#
# A role with only USAGE on schema code and SELECT on its tables (what a
# read-only search user is given) must be able to search and embed, and
# nothing more: it cannot point codevec.model at a path (reading server
# files), cannot make codevec's C functions read a relation it has no
# SELECT on (codevec_knn, codevec_bm25_blocks_topk, codevec_bm25_topk,
# codevec_gpu_routing, an index scan), cannot write code.* (inserts, code.bm25_refresh()). Positive
# controls: the same role answers exactly what the owner answers, and a role
# given pg_read_server_files may load a model from a path.
#
# Needs the PG* variables of a running server with codevec and its default
# model installed; makes a scratch database and two roles and drops them.
# Ends with "N passed, N failed"; exit status 1 on failure.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
LOADER=${LOADER:-$ROOT/loaders/codevec-load}
PYLIB=${CVL_TEST_PYLIB:-/usr/lib/python3.11}
DB=privilege_test_$$
R=cv_reader_$$
F=cv_files_$$
MAINTDB=${PGDATABASE:-postgres}
PASS=0; FAIL=0; N=0
cleanup() {
	psql -X -q -d "$MAINTDB" -c "DROP DATABASE IF EXISTS $DB" -c "DROP ROLE IF EXISTS $R" -c "DROP ROLE IF EXISTS $F" >/dev/null 2>&1
}
trap cleanup EXIT
source "$ROOT/test/tap.sh"	# ok, is, like, skip, finish
# AS ROLE SQL: run as ROLE (SET ROLE inside one session, so no password is needed)
AS() { psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$DB" -c "SET client_min_messages = warning" -c "SET codevec.device = cpu" -c "SET ROLE $1" -c "$2" 2>&1; }
# STATE ROLE SQL: the SQLSTATE of the statement's error as ROLE (empty when it succeeds)
STATE() {
	psql -X -q -d "$DB" -v VERBOSITY=verbose -c "SET client_min_messages = warning" -c "SET codevec.device = cpu" \
		-c "SET ROLE $1" -c "$2" 2>&1 >/dev/null | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p' | head -1
}
OWNER() { psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$DB" -c "SET client_min_messages = warning" -c "SET codevec.device = cpu" -c "$1"; }

psql -X -q -d "$MAINTDB" -c "CREATE DATABASE $DB" >/dev/null || { ok 1 "database reachable"; finish; }
OWNER "CREATE EXTENSION codevec" >/dev/null
PGDATABASE=$DB "$LOADER" --quiet --repo stdlib-json "$PYLIB/json" >/dev/null 2>&1
ok $? "codevec-load loads $PYLIB/json with embeddings"
OWNER "CREATE INDEX snippets_emb_gpuivf ON code.snippets USING gpuivf (emb codevec_cosine_ops)" >/dev/null
# a table the reader is not given, with a gpuivf index and BM25-shaped relations
OWNER "CREATE TABLE secret (id bigint PRIMARY KEY, emb codevec(384), tsv tsvector);
INSERT INTO secret SELECT id, emb, tsv FROM code.snippets;
CREATE INDEX secret_emb ON secret USING gpuivf (emb codevec_cosine_ops);
CREATE TABLE secret_post AS SELECT * FROM code.bm25_postings;
CREATE UNIQUE INDEX secret_post_idx ON secret_post (term, block);
CREATE TABLE secret_imp (term int, impact real, id bigint);
CREATE INDEX secret_imp_idx ON secret_imp (term, impact DESC, id)" >/dev/null
OWNER "VACUUM ANALYZE secret, secret_post, secret_imp" >/dev/null
psql -X -q -d "$DB" -c "CREATE ROLE $R" -c "GRANT USAGE ON SCHEMA code TO $R" \
	-c "GRANT SELECT ON ALL TABLES IN SCHEMA code TO $R" \
	-c "CREATE ROLE $F" -c "GRANT pg_read_server_files TO $F" -c "GRANT USAGE ON SCHEMA code TO $F" >/dev/null
n=$(OWNER "SELECT count(*) FROM code.snippets WHERE emb IS NOT NULL")
[ "${n:-0}" -gt 10 ]; ok $? "the corpus has embedded snippets ($n)"

echo "# what a read-only role can do: the owner's answers, exactly"
for mode in keyword vector hybrid; do
	q="SELECT string_agg(id::text, ',' ORDER BY ordinality) FROM code.search('parse a JSON document into Python objects', k => 10, mode => '$mode') WITH ORDINALITY"
	want=$(OWNER "$q"); got=$(AS $R "$q" | tail -1)
	[ -n "$want" ]; ok $? "code.search $mode answers the owner"
	is "$got" "$want" "code.search $mode as the read-only role equals the owner's"
done
q="SELECT string_agg(id::text, ',' ORDER BY ordinality) FROM code.more_like_this((SELECT min(id) FROM code.snippets), k => 5) WITH ORDINALITY"
is "$(AS $R "$q" | tail -1)" "$(OWNER "$q")" "code.more_like_this as the read-only role"
is "$(AS $R "SELECT codevec_dims(embed('read a file'))" | tail -1)" 384 "embed() as the read-only role"
is "$(AS $R "SELECT embed('read a file') = (SELECT embed('read a file'))" | tail -1)" t "embed() is deterministic for the role"
is "$(AS $R "SET codevec.model = 'code-minilm-l6'; SELECT codevec_dims(embed('x'))" | tail -1)" 384 "an installed model chosen by name"

echo "# what it cannot do: read server files through codevec.model"
models=$(pg_config --sharedir)/extension/codevec_models
is "$(STATE $R "SET codevec.model = '/etc'; SELECT embed('x')")" 42501 "codevec.model = '/etc' is refused (42501)"
is "$(STATE $R "SET codevec.model = '$models/code-minilm-l6'; SELECT embed('x')")" 42501 "codevec.model = a real model's path is refused (42501)"
is "$(STATE $R "SET codevec.model = '/etc/passwd'; SELECT codevec_model_info()")" 42501 "codevec_model_info() under a path setting is refused (42501)"
s=$(STATE $R "SET codevec.model = '..'; SELECT embed('x')")
[ -n "$s" ] && [ "$s" != XX000 ]; ok $? "codevec.model = '..' is an error with a SQLSTATE, not a path ($s)"
is "$(AS $F "SET codevec.model = '$models/code-minilm-l6'; SELECT codevec_dims(embed('x'))" | tail -1)" 384 \
	"a role with pg_read_server_files may load a model from a path (positive control)"

echo "# what it cannot do: make codevec read a relation it has no SELECT on"
is "$(STATE $R "SELECT id FROM secret ORDER BY emb <=> embed('x') LIMIT 3")" 42501 "an index scan of the unreadable table (42501)"
is "$(STATE $R "SELECT * FROM codevec_knn('secret_emb', ARRAY[embed('x')], 3)")" 42501 "codevec_knn on the unreadable table's index (42501)"
is "$(STATE $R "SELECT * FROM codevec_gpu_routing('secret_emb')")" 42501 "codevec_gpu_routing on the unreadable table's index (42501)"
topk="SELECT count(*) FROM code.bm25_params p, LATERAL code.bm25_query('parse json') q,
 LATERAL codevec_bm25_blocks_topk(q.terms, q.idf, 5, %s::regclass, p.block_shift)"
is "$(AS $R "$(printf "$topk" "'code.bm25_postings_idx'")" | tail -1)" 5 "codevec_bm25_blocks_topk on code's own postings works for the role (positive control)"
is "$(STATE $R "$(printf "$topk" "'secret_post_idx'")")" 42501 "codevec_bm25_blocks_topk over unreadable postings (42501)"
fagin="SELECT count(*) FROM codevec_bm25_topk(ARRAY[1], ARRAY['x'], ARRAY[1.0::float8], 5, ARRAY[1,1,1,1]::real[], 1.2, 0.75, 10, %s::regclass, %s::regclass, 'tsv')"
is "$(STATE $R "$(printf "$fagin" "'secret_imp_idx'" "'code.snippets_pkey'")")" 42501 "codevec_bm25_topk over unreadable impact lists (42501)"
is "$(STATE $R "$(printf "$fagin" "'code.snippets_pkey'" "'secret_pkey'")")" 42501 "codevec_bm25_topk scoring from an unreadable table (42501)"

echo "# what it cannot do: write"
is "$(STATE $R "INSERT INTO code.repos (name, root) VALUES ('x', '/')")" 42501 "no insert into code.repos (42501)"
is "$(STATE $R "DELETE FROM code.snippets")" 42501 "no delete from code.snippets (42501)"
is "$(STATE $R "SELECT code.bm25_refresh()")" 42501 "code.bm25_refresh() is refused (42501)"
is "$(STATE $R "CREATE INDEX ON code.snippets USING gpuivf (emb codevec_cosine_ops)")" 42501 "no index on code.snippets (42501)"
is "$(OWNER "SELECT count(*) FROM secret")" "$n" "the unreadable table is intact"
finish
