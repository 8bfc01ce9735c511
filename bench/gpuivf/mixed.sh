#!/usr/bin/env bash
# bench/gpuivf/mixed.sh -- the GPU service under code.search's mix of
# requests (issues 21 and 13) and the embedding pass of a load (issue 23),
# on the CUDA host (as root, test/gpu/setup.sh's server). A code.search in
# vector or hybrid mode posts an EMBED (the question) and then a KNN, so
# under load the service's batches hold both kinds.
#
#   bash bench/gpuivf/mixed.sh TEXTS          # TSV id<TAB>text, or .xz of it
#   BUILDS="old=DIR new=DIR" bash ...         # A/B: each DIR holds codevec.so
#                                             # and codevec_cuda_encoder.so
#
# TEXTS: real snippet texts, e.g. every 4th embed_text of the Linux tree
# (psql -c "\copy (SELECT id, embed_text FROM code.snippets WHERE id % 4 = 0
# ORDER BY id) TO 'lxtexts.tsv'" on a database codevec-load made).
#   1. The embedding pass as codevec-load runs it: embed(text[]) of 1,024
#      consecutive texts a call, at 1, 8 (the loader's writers) and 16
#      connections: texts per second = 1,024 x calls per second.
#   2. Their embeddings, the table repeated to ROWS rows (default 785,216,
#      the Linux tree's size) under new ids, and a gpuivf index (lists 1).
#   3. For each build (default: the installed one): the server restarted
#      on it, then pgbench -M prepared for T seconds of embed() alone, of
#      the vector list hybrid mode asks for (the question embedded, then
#      its 100 nearest rows) and of vector mode's (10), at 1, 16 and 64
#      clients; the service's stages over the 16-client hybrid-like run.
#      Questions: the first 80 characters of 1,000 of the texts.
# Results: RESULT lines on stdout, and $OUT/mixed.csv when OUT is set.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
texts=${1:?usage: mixed.sh TEXTS.tsv[.xz]}
set --		# setup.sh takes server settings as arguments: none here
source "$top/test/gpu/setup.sh" || exit 1
. "$top/bench/gpuivf/lib.sh"	# stages_snap, stages_table, tps
T=${T:-10}
ROWS=${ROWS:-785216}
work=$(mktemp -d /tmp/mixed.XXXXXX); chmod 755 "$work"
csv=${OUT:+$OUT/mixed.csv}
[ -n "$csv" ] && echo "build,what,clients,value,unit" > "$csv"
result() {	# result BUILD WHAT CLIENTS VALUE UNIT
	echo "RESULT,$1,$2,$3,$4,$5"
	[ -n "$csv" ] && echo "$1,$2,$3,$4,$5" >> "$csv"
	return 0
}

export PGDATABASE=mixed
psql -qX -d postgres -c "DROP DATABASE IF EXISTS mixed" -c "CREATE DATABASE mixed" >/dev/null || exit 1
psql -qX -c "CREATE EXTENSION codevec" -c "CREATE TABLE lt (id bigint PRIMARY KEY, t text)" >/dev/null || exit 1
case $texts in
*.xz) xz -dc "$texts" > "$work/texts.tsv" ;;
*) cp "$texts" "$work/texts.tsv" ;;
esac
psql -qX -c "\\copy lt FROM '$work/texts.tsv'" -c "ANALYZE lt" >/dev/null || exit 1
n=$(psql -qAtX -c "SELECT count(*) FROM lt")
echo "# $n texts, mean $(psql -qAtX -c "SELECT round(avg(octet_length(t))) FROM lt") bytes; model $(psql -qAtX -c "SELECT name FROM codevec_model_info()" 2>/dev/null)"

# ---------------------------------------------------------------- 1. the embedding pass
psql -qX -c "CREATE TABLE ln AS SELECT row_number() OVER (ORDER BY id) AS n, t FROM lt" \
	-c "CREATE UNIQUE INDEX ON ln (n)" -c "ANALYZE ln" >/dev/null
printf '\\set a random(1, %d)\nSELECT count(*) FROM unnest(embed(ARRAY(SELECT t FROM ln WHERE n >= :a AND n < :a + 1024 ORDER BY n)));\n' \
	"$((n - 1024))" > "$work/pass.sql"
pgbench -n -M prepared -c 8 -j 8 -T 3 -f "$work/pass.sql" > /dev/null 2>&1	# the model on the device
for c in 1 8 16; do
	pgbench -n -M prepared -c "$c" -j "$c" -T "$T" -f "$work/pass.sql" > "$work/pass.out" 2>&1
	grep -E 'failed|ERROR' "$work/pass.out" | head -2 | sed 's/^/# /'
	result installed embed_pass_texts_per_s "$c" "$(awk -v t="$(tps "$work/pass.out")" 'BEGIN { printf "%.0f", t * 1024 }')" texts/s
done

# ---------------------------------------------------------------- 2. the table and its index
psql -qX -c "CREATE TABLE st (id bigint, emb codevec(384))" -c "DO \$\$
	DECLARE a bigint := 1;
	BEGIN
		WHILE a <= $n LOOP
			INSERT INTO st SELECT u.o + a - 1, u.v
			  FROM unnest(embed(ARRAY(SELECT t FROM ln WHERE n >= a AND n < a + 1024 ORDER BY n))) WITH ORDINALITY u(v, o);
			a := a + 1024;
		END LOOP;
	END \$\$" || exit 1
psql -qX -c "INSERT INTO st SELECT id + k * 10000000, emb FROM st, generate_series(1, ($ROWS - 1) / $n) k" \
	-c "DELETE FROM st WHERE id IN (SELECT id FROM st ORDER BY id DESC LIMIT greatest((SELECT count(*) FROM st) - $ROWS, 0))" \
	-c '\timing on' -c "CREATE INDEX st_emb ON st USING gpuivf (emb codevec_cosine_ops)" -c "VACUUM ANALYZE st" || exit 1
echo "# st: $(psql -qAtX -c "SELECT count(*) FROM st") rows"
psql -qX -c "CREATE TABLE q AS SELECT row_number() OVER (ORDER BY n) AS i, left(t, 80) AS q FROM ln WHERE n % (($n + 999) / 1000) = 0" \
	-c "CREATE UNIQUE INDEX ON q (i)" >/dev/null
nq=$(psql -qAtX -c "SELECT count(*) FROM q")
qsel="(SELECT q.q FROM q WHERE q.i = :i)"
printf '\\set i random(1, %d)\nSELECT embed(%s) IS NOT NULL;\n' "$nq" "$qsel" > "$work/embed.sql"
for k in 10 100; do
	printf '\\set i random(1, %d)\nSELECT count(*) FROM (SELECT id FROM st ORDER BY emb <=> (SELECT embed(q.q) FROM q WHERE q.i = :i) LIMIT %d) x;\n' \
		"$nq" "$k" > "$work/vector$k.sql"
done

# ---------------------------------------------------------------- 3. each build
builds=${BUILDS:-installed=}
for b in $builds; do
	name=${b%%=*}; dir=${b#*=}
	if [ -n "$dir" ]; then
		gpu_server_stop
		cp "$dir/codevec.so" "$dir/codevec_cuda_encoder.so" "$(pg_config --pkglibdir)/" || exit 1
		source "$top/test/gpu/setup.sh" || exit 1
		export PGDATABASE=mixed
	fi
	psql -qX -c "SELECT count(*) FROM (SELECT id FROM st ORDER BY emb <=> embed('warm up') LIMIT 10) x" >/dev/null
	for what in embed vector100 vector10; do
		for c in 1 16 64; do
			[ "$what$c" = vector10016 ] && stages_snap
			pgbench -n -M prepared -c "$c" -j "$c" -T "$T" -f "$work/$what.sql" > "$work/run.out" 2>&1
			grep -E 'failed|ERROR' "$work/run.out" | head -2 | sed 's/^/# /'
			result "$name" "$what" "$c" "$(tps "$work/run.out")" tps
			[ "$c" = 1 ] && result "$name" "$what-latency" 1 "$(sed -n 's/^latency average = \([0-9.]*\).*/\1/p' "$work/run.out")" ms
			if [ "$what$c" = vector10016 ]; then
				echo "# $name, vector100 at 16 clients: the GPU service's stages (us)"
				stages_table
			fi
		done
	done
	psql -qAtX -c "SELECT '# ' || '$name' || ': requests ' || requests || ', batches ' || batches || ', fallbacks ' || fallbacks FROM codevec_gpu_status()"
done
rm -rf "$work"
