#!/usr/bin/env bash
# bench/gpuembed/run.sh — embed() through SQL on the GPU service against
# sentence-transformers on PyTorch, same GPU, same model, same inputs.
# Runs on the CUDA host as root, from the repository root, in two steps
# (two device calls in a row: the model and the PostgreSQL kit do not fit
# one 64 MiB transfer together):
#
#   bash bench/gpuembed/run.sh torch   # needs .gpukit/minilm-f16; writes
#                                      # .gpukit/work/{bulk.tsv,rand12-384}
#   bash bench/gpuembed/run.sh sql     # needs the kit of test/gpu/pack.sh
#
# torch: bench/gpuembed/torch_anchor.py (its docstring says what it times).
# sql: a server with the GPU service (test/gpu/setup.sh), the same texts and
# models; per model (all-MiniLM-L6-v2, the 12-layer random model):
#   - query latency: pgbench -M prepared, one client, SELECT embed($1) with
#     the same 12-token query, per-transaction log -> p50/p99 (cuda and cpu);
#   - bulk: SELECT embed(ARRAY[4,096 texts]) with codevec.max_tokens = 128
#     and 256 (every text is longer, so exactly L tokens), best of 3, one
#     session; the same with 4 and 16 sessions at once (each its own
#     4,096-text array) -> aggregate seq/s; tokenization alone
#     (codevec_tokenize over the same texts) -> its share;
#   - 16 clients: pgbench -M prepared -c 16, SELECT embed(q) of 1,000
#     different short queries -> embeds/s, p50/p99;
#   - GPU memory (codevec_gpu_status) before, with the models, after 16
#     clients; backend memory (VmRSS) of a session that embedded on cuda vs
#     on the CPU.
# Lines starting RESULT are the figures; results/ keeps the logs.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
work=$top/.gpukit/work
QUERY="compute the sha256 of a file in chunks"

case "${1:-}" in
torch)
	python3 "$top/bench/gpuembed/torch_anchor.py" "$top/.gpukit/minilm-f16" "$work"
	exit $?
	;;
sql) ;;
*) echo "usage: $0 torch|sql" >&2; exit 2 ;;
esac

[ -f "$work/bulk.tsv" ] || { echo "no $work/bulk.tsv: run '$0 torch' first (same machine)" >&2; exit 1; }
set --		# setup.sh takes server settings as arguments: none here
source "$top/test/gpu/setup.sh"
models=$(pg_config --sharedir)/extension/codevec_models
[ -d "$work/rand12-384" ] && { rm -rf "$models/rand12-384"; cp -r "$work/rand12-384" "$models/"; chmod -R a+rX "$models"; }
psql -qX -v ON_ERROR_STOP=1 <<SQL
DROP TABLE IF EXISTS bulk, qs;
CREATE TABLE bulk (id int, t text);
\copy bulk FROM '$work/bulk.tsv'
CREATE TABLE qs AS SELECT id, left(regexp_replace(t, '\s+', ' ', 'g'), 60) AS q FROM bulk WHERE id <= 1000;
SQL
echo "bulk texts: $(psql -qAtX -c "SELECT count(*) FROM bulk"), GPU: $(psql -qAtX -c "SELECT device FROM codevec_gpu_status()")"
echo "query tokens: $(psql -qAtX -c "SELECT array_length(codevec_tokenize('$QUERY'), 1)")"
mem0=$(psql -qAtX -c "SELECT memory_used_mb FROM codevec_gpu_status()")

ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
pctl() {	# pgbench per-transaction logs -> "p50 p99" in microseconds
	cat "$@" | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {printf "%d %d", a[int(NR*0.5)+1], a[int(NR*0.99)+1]}'
}

for model in all-MiniLM-L6-v2 rand12-384; do
	[ -d "$models/$model" ] || continue
	export PGOPTIONS="-c codevec.model=$model"
	psql -qAtX -c "SET codevec.device = cuda" -c "SELECT codevec_dims(embed('warm up'))" >/dev/null

	# single query latency, prepared
	echo "SELECT embed(:q);" >/tmp/q.sql
	for dev in cuda cpu; do
		rm -f /tmp/pgbq.*
		PGOPTIONS="$PGOPTIONS -c codevec.device=$dev" pgbench -n -M prepared -c 1 -T 8 -D "q=$QUERY" \
			-f /tmp/q.sql -l --log-prefix=/tmp/pgbq postgres >/dev/null 2>&1
		read -r p50 p99 <<<"$(pctl /tmp/pgbq.*)"
		echo "RESULT,codevec,$model,query,device=$dev,p50_us=$p50,p99_us=$p99,n=$(cat /tmp/pgbq.* | wc -l)"
	done

	for L in 128 256; do
		# tokenization alone, one session
		s0=$(date +%s%N)
		psql -qAtX -c "SET codevec.max_tokens = $L" -c "SELECT sum(array_length(codevec_tokenize(t), 1)) FROM bulk" >/dev/null
		tok_ms=$(ms "$s0")
		best=999999
		for _ in 1 2 3; do
			s0=$(date +%s%N)
			psql -qAtX -c "SET codevec.max_tokens = $L" -c "SET codevec.device = cuda" \
				-c "SELECT count(*) FROM unnest(embed(ARRAY(SELECT t FROM bulk ORDER BY id)))" >/dev/null
			t=$(ms "$s0"); [ "$t" -lt "$best" ] && best=$t
		done
		echo "RESULT,codevec,$model,bulk,L=$L,sessions=1,ms=$best,seq_per_s=$((4096 * 1000 / best)),tokenize_ms=$tok_ms"
		echo "SET codevec.max_tokens = $L;" >/tmp/bulk.sql
		echo "SELECT count(*) FROM unnest(embed(ARRAY(SELECT t FROM bulk ORDER BY id)));" >>/tmp/bulk.sql
		for c in 4 16; do
			tps=$(PGOPTIONS="$PGOPTIONS -c codevec.device=cuda" pgbench -n -c $c -j $c -t 3 -f /tmp/bulk.sql postgres 2>/dev/null \
				| sed -n 's/^tps = \([0-9.]*\) .*/\1/p')
			echo "RESULT,codevec,$model,bulk,L=$L,sessions=$c,tps=$tps,seq_per_s=$(awk -v t="$tps" 'BEGIN {printf "%d", t * 4096}')"
		done
	done

	# 16 clients, different short queries
	printf '\\set i random(1, 1000)\nSELECT embed(q) FROM qs WHERE id = :i;\n' >/tmp/q16.sql
	rm -f /tmp/pgb16.*
	out16=$(PGOPTIONS="$PGOPTIONS -c codevec.device=cuda" pgbench -n -M prepared -c 16 -j 16 -T 10 -f /tmp/q16.sql \
		-l --log-prefix=/tmp/pgb16 postgres 2>/dev/null)
	read -r p50 p99 <<<"$(pctl /tmp/pgb16.*)"
	echo "RESULT,codevec,$model,clients16,tps=$(echo "$out16" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p'),p50_us=$p50,p99_us=$p99"
	psql -X -c "SELECT models_loaded, memory_used_mb, requests, batches, round(mean_batch::numeric, 1) AS mean_batch, max_batch FROM codevec_gpu_status()"
done
unset PGOPTIONS

mem1=$(psql -qAtX -c "SELECT memory_used_mb FROM codevec_gpu_status()")
echo "RESULT,codevec,memory,gpu_used_mb_before=$mem0,after=$mem1,models=$(psql -qAtX -c "SELECT models_loaded FROM codevec_gpu_status()")"
grep "model .* on the device" /tmp/pgdata/server.log | sed 's/^.*LOG: */# /'
for dev in cuda cpu; do
	# a session that embedded once: its resident memory, read while it is open
	psql -qAtX -c "SET codevec.device = $dev" -c "SELECT codevec_dims(embed('x'))" -c "SELECT pg_sleep(3)" >/dev/null &
	sleep 2
	pid=$(psql -qAtX -c "SELECT pid FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(3)'" | head -1)
	echo "RESULT,codevec,backend_rss,device=$dev,kb=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/$pid/status)"
	wait
done
psql -X -x -c "SELECT * FROM codevec_gpu_status()"
grep -E "ERROR|FATAL|PANIC|terminated" /tmp/pgdata/server.log | tail -10
