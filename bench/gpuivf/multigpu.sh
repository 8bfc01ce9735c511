#!/usr/bin/env bash
# bench/gpuivf/multigpu.sh — several GPUs in one server (issue 19), one GPU
# against two in the same run, on the CUDA host as root, on the server of
# test/gpu/setup.sh (kit as for test/gpu/run.sh). Meant for nvidia-h200-x2;
# on one GPU, TWO='0,0' runs the same steps (the ratios then say nothing
# about speed).
#
#   bash bench/gpuivf/multigpu.sh split [N]       (default 20000000)
#   bash bench/gpuivf/multigpu.sh replicate [N]   (default 1000000)
#   TWO='0,1' ONE='0' T=10 KEEP=0                  (the device lists; seconds per pgbench row;
#                                                  KEEP=1 reuses the table of an earlier call)
#
# split: N random x 384 rows (bench/seqscan/gen.c, an unlogged table), a
# flat cosine index; one GPU (codevec.gpu_devices = ONE), then two
# (codevec.gpu_devices = TWO, codevec.gpu_split_rows = N / 2: one row range
# per GPU). Each: the cold first query (the copy loading), then 1 client,
# pgbench -M prepared, k = 10 over 1,000 queries, p50/p99/QPS; on two, 3
# queries checked against a sequential scan. Target: p50 on two <= 0.6 x
# p50 on one.
# replicate: N rows, the same index; one GPU, then two with
# codevec.gpu_replicate_rate = 100 (2 s of load first, so the copy is
# replicated), 16 clients each. Target: QPS on two >= 1.8 x QPS on one.
# Lines starting RESULT are the figures (RESULT,multigpu,... with the ratio
# last); codevec_gpu_devices() is printed after each two-GPU part.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
what=${1:?split|replicate}
case "$what" in
split) n=${2:-20000000} ;;
replicate) n=${2:-1000000} ;;
*) echo "usage: $0 split|replicate [N]" >&2; exit 2 ;;
esac
ONE=${ONE:-0}
TWO=${TWO:-0,1}
T=${T:-10}
work=/tmp/multigpu; mkdir -p "$work"; chmod 755 "$work"
. "$top/bench/gpuivf/lib.sh"	# ms, bench, pctl, fill_random
lib=/opt/pgkit/usr/lib/x86_64-linux-gnu
bin=/opt/pgkit/usr/lib/postgresql/15/bin
pgstop() { su pg -c "LD_LIBRARY_PATH=$lib $bin/pg_ctl -D /tmp/pgdata -m fast -w stop" >/dev/null 2>&1; }
# start SETTINGS...: the server of test/gpu/setup.sh with these settings (prewarm off:
# the first query loads the copy, and is timed)
start() { pgstop; set -- codevec.gpu_prewarm=off "$@"; source "$top/test/gpu/setup.sh"; }
Q="SELECT id FROM t ORDER BY emb <=> (SELECT emb FROM q WHERE qid = :q) LIMIT 10"

start "codevec.gpu_devices='$ONE'" max_parallel_maintenance_workers=15 maintenance_work_mem=16GB \
	max_worker_processes=32
echo "# $what $n, $(nproc) cores, $(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | sort | uniq -c | tr -s ' ' | tr '\n' ';'), commit $(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo ?)"

# --- data: an unlogged table in 8 parts, 4 streams (as compare.sh) ---------
# KEEP=1: reuse t, q and t_flat of an earlier run on this server when t has
# the rows asked for (a second call after one that ran out of time)
s0=$(date +%s%N)
have=$(psql -qAtX -c "SELECT count(*) FROM t WHERE to_regclass('t_flat') IS NOT NULL AND to_regclass('q') IS NOT NULL" 2>/dev/null)
if [ "${KEEP:-0}" = 1 ] && [ "$have" -ge $(( n / 8 * 8 )) ] 2>/dev/null; then
	echo "# KEEP=1: the table of an earlier run ($have rows)"
else
	psql -qX -c "DROP TABLE IF EXISTS t, q" -c "CREATE UNLOGGED TABLE t (id int, emb codevec(384))" \
		-c "CREATE TABLE q (qid int, emb codevec(384))" >/dev/null
	fill_random "$n"
	psql -qX -c "VACUUM ANALYZE t" -c "VACUUM ANALYZE q" -c "CREATE INDEX t_flat ON t USING gpuivf (emb codevec_cosine_ops)"
fi
n=$(psql -qAtX -c "SELECT count(*) FROM t")
echo "RESULT,multigpu,data,n=$n,load_and_build_ms=$(ms "$s0")"

# cold LABEL: the first query (loads the copy), timed
cold() {
	local s
	s=$(date +%s%N)
	psql -qAtX -c "SET codevec.device = cuda" -c "SELECT count(*) FROM (SELECT id FROM t ORDER BY emb <=> (SELECT emb FROM q WHERE qid = 1) LIMIT 10) s" >/dev/null
	echo "RESULT,multigpu,$1,cold_first_query_ms=$(ms "$s")"
}
# field LINE NAME: the value of NAME= in a RESULT line
field() { sed -n "s/.*[,]$2=\([0-9]*\).*/\1/p" <<<"$1"; }

if [ "$what" = split ]; then
	cold "one gpu ($ONE)"
	r1=$(bench "split_one_gpu" "-c codevec.device=cuda" "$Q" 1); echo "$r1"
	start "codevec.gpu_devices='$TWO'" "codevec.gpu_split_rows=$(( (n + 1) / 2 ))"
	cold "two gpus ($TWO), split"
	r2=$(bench "split_two_gpus" "-c codevec.device=cuda" "$Q" 1); echo "$r2"
	# exactness at this size: 3 queries against a sequential scan (CPU)
	bad=0
	for qid in 2 3 4; do
		a=$(psql -qAtX -c "SET codevec.device = cuda" -c "SET enable_seqscan = off" \
			-c "SELECT string_agg(id::text, ',') FROM (SELECT id FROM t ORDER BY emb <=> (SELECT emb FROM q WHERE qid = $qid) LIMIT 10) s")
		b=$(psql -qAtX -c "SET codevec.device = cpu" -c "SET enable_indexscan = off" -c "SET max_parallel_workers_per_gather = 8" \
			-c "SELECT string_agg(id::text, ',') FROM (SELECT id FROM t ORDER BY emb <=> (SELECT emb FROM q WHERE qid = $qid), ctid LIMIT 10) s")
		[ "$a" = "$b" ] || bad=$((bad + 1))
	done
	echo "RESULT,multigpu,split,exact_vs_seqscan_mismatches=$bad/3"
	psql -X -c "SELECT * FROM codevec_gpu_devices()"
	p1=$(field "$r1" p50_us); p2=$(field "$r2" p50_us)
	echo "RESULT,multigpu,split,n=$n,p50_one_us=$p1,p50_two_us=$p2,ratio=$(awk -v a="$p2" -v b="$p1" 'BEGIN {printf "%.3f", b > 0 ? a / b : 0}'),target=0.6"
else
	cold "one gpu ($ONE)"
	r1=$(bench "replicate_one_gpu" "-c codevec.device=cuda" "$Q" 16); echo "$r1"
	start "codevec.gpu_devices='$TWO'" codevec.gpu_split_rows=0 codevec.gpu_replicate_rate=100
	cold "two gpus ($TWO), before replication"
	T=3 bench "replicate_warmup" "-c codevec.device=cuda" "$Q" 16 >/dev/null
	psql -X -c "SELECT * FROM codevec_gpu_devices()"
	r2=$(bench "replicate_two_gpus" "-c codevec.device=cuda" "$Q" 16); echo "$r2"
	psql -X -c "SELECT * FROM codevec_gpu_devices()"
	q1=$(field "$r1" qps); q2=$(field "$r2" qps)
	echo "RESULT,multigpu,replicate,n=$n,clients=16,qps_one=$q1,qps_two=$q2,ratio=$(awk -v a="$q2" -v b="$q1" 'BEGIN {printf "%.3f", b > 0 ? a / b : 0}'),target=1.8"
fi
psql -X -c "SELECT * FROM codevec_gpu_stages() WHERE timings > 0"
pgstop
