#!/usr/bin/env bash
# bench/gpuivf/pipeline.sh — double buffering in the GPU service (issue 13,
# item 2): the same exact top-10 query through SQL with
# codevec.gpu_double_buffer off and on, side by side in one run, on the CUDA
# host as root after test/gpu/pack.sh (kit as for test/gpu/run.sh):
#
#   bash bench/gpuivf/pipeline.sh [ROWS]      (default 1,000,000 random x 384, cosine)
#
# For each setting (ALTER SYSTEM + reload, the same server and copy), at 1,
# 16 and 64 clients (pgbench -M prepared, T s each, default 8): QPS, p50,
# p99, requests per launch, and codevec_gpu_stages()'s deltas for the stages
# that say what overlapped (knn kernels and whole batch per timing; finish;
# overlap: batches started while another was on the device). Then exactness
# under load with double buffering on: 16 clients at once, 32 queries each
# (512 answers), every answer against a sequential scan on the CPU, and a
# PyTorch q @ X.T + topk anchor on the same GPU (compare.sh torch).
# Output: RESULT,... lines and a Markdown table.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
n=${1:-1000000}
T=${T:-8}
work=/tmp/pipeline; mkdir -p "$work"; chmod 755 "$work"
. "$top/bench/gpuivf/lib.sh"	# pctl, fill_random, stages_snap
source "$top/test/gpu/setup.sh" max_worker_processes=32
echo "# pipeline: $n random rows x 384, GPU $(psql -qAtX -c "SELECT device FROM codevec_gpu_status()"), $(nproc) cores, T=${T}s"

psql -qX -c "DROP TABLE IF EXISTS t, q, pres, pexp" -c "CREATE TABLE t (id int, emb codevec(384))" \
	-c "CREATE TABLE q (qid int, emb codevec(384))" >/dev/null
fill_random "$n"
psql -qX -c "CREATE INDEX ON q (qid)" -c "CREATE INDEX t_flat ON t USING gpuivf (emb codevec_cosine_ops)" \
	-c "VACUUM ANALYZE t" -c "VACUUM ANALYZE q" >/dev/null
psql -qAtX -c "SET codevec.device = cuda" -c "SELECT id FROM t ORDER BY emb <=> (SELECT emb FROM q WHERE qid = 1) LIMIT 10" >/dev/null

counters() { psql -qAtX -F ' ' -c "SELECT requests, batches FROM codevec_gpu_status()"; }
# stage NAME: "per timing us" of a stage since stages_snap, or "count" for overlap
stage_us() {
	psql -qAtX -c "SELECT CASE WHEN '$1' = 'overlap' THEN (s.timings - z.timings)::text
		ELSE round(((s.total_us - z.total_us) / nullif(s.timings - z.timings, 0))::numeric, 1)::text END
		FROM codevec_gpu_stages() s JOIN stages0 z USING (stage) WHERE stage = '$1'"
}
declare -A R
QC="SELECT id FROM t ORDER BY emb <=> (SELECT emb FROM q WHERE qid = :q) LIMIT 10;"
printf '\\set q random(1, 1000)\n%s\n' "$QC" >"$work/b.sql"
for mode in off on; do
	psql -qX -c "ALTER SYSTEM SET codevec.gpu_double_buffer = $mode" -c "SELECT pg_reload_conf()" >/dev/null
	sleep 1
	for c in 1 16 64; do
		rm -f "$work"/pgb.*
		read -r r0 b0 <<<"$(counters)"
		stages_snap
		out=$(PGOPTIONS="-c codevec.device=cuda" pgbench -n -M prepared -c "$c" -j "$c" -T "$T" -f "$work/b.sql" -l --log-prefix="$work/pgb" postgres 2>&1)
		read -r r1 b1 <<<"$(counters)"
		read -r p50 p99 <<<"$(pctl "$work"/pgb.*)"
		qps=$(echo "$out" | sed -n 's/^tps = \([0-9.]*\) .*/\1/p' | cut -d. -f1)
		mb=$(awk -v r=$((r1 - r0)) -v b=$((b1 - b0)) 'BEGIN {printf "%.2f", (b > 0 ? r / b : 0)}')
		kern=$(stage_us "knn kernels"); batch=$(stage_us batch); fin=$(stage_us finish); ov=$(stage_us overlap)
		R[$mode,$c]="| $mode | $c | ${qps:-?} | $p50 | $p99 | $mb | ${kern:--} | ${batch:--} | ${fin:--} | ${ov:-0} |"
		echo "RESULT,pipeline,double_buffer=$mode,clients=$c,qps=$qps,p50_us=$p50,p99_us=$p99,mean_batch=$mb,kernels_per_launch_us=$kern,batch_us=$batch,finish_us=$fin,overlapped_batches=$ov"
	done
done

# exactness under load, double buffering on: 16 clients, 32 queries each
psql -qX -c "CREATE TABLE pres (client int, qid int, ids int[])" >/dev/null
for c in $(seq 1 16); do
	psql -qX -c "SET codevec.device = cuda" -c "DO \$\$
		BEGIN
			FOR i IN 0..31 LOOP
				INSERT INTO pres SELECT $c, qid, (SELECT array_agg(id) FROM (SELECT id FROM t ORDER BY emb <=> q.emb LIMIT 10) s)
				FROM q WHERE qid = 1 + ($c * 31 + i * 7) % 200;
			END LOOP;
		END \$\$" >"$work/client$c.out" 2>&1 &
done
wait
psql -qX -c "CREATE TABLE pexp (qid int, ids int[])" >/dev/null
for p in $(seq 0 7); do
	psql -qX -c "SET codevec.device = cpu" -c "SET enable_indexscan = off" -c "SET max_parallel_workers_per_gather = 0" \
		-c "INSERT INTO pexp SELECT qid, ARRAY(SELECT id FROM t ORDER BY emb <=> q.emb, ctid LIMIT 10) FROM q WHERE qid <= 200 AND qid % 8 = $p" >/dev/null &
done
wait
read -r answers wrong <<<"$(psql -qAtX -F ' ' -c "SELECT count(*), count(*) FILTER (WHERE r.ids IS DISTINCT FROM e.ids) FROM pres r JOIN pexp e USING (qid)")"
echo "RESULT,pipeline,exact_under_load,answers=$answers,differ_from_seqscan=$wrong,fallbacks=$(psql -qAtX -c "SELECT fallbacks FROM codevec_gpu_status()")"
torch=$(bash "$top/bench/gpuivf/compare.sh" torch "$n" 2>&1 | grep '^RESULT')
echo "$torch"
psql -qX -c "ALTER SYSTEM RESET codevec.gpu_double_buffer" -c "SELECT pg_reload_conf()" >/dev/null

cat <<MD

| double buffer | clients | QPS | p50 us | p99 us | requests per launch | knn kernels per launch us | batch (attach to wake) us | finish us | batches overlapped |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
${R[off,1]}
${R[on,1]}
${R[off,16]}
${R[on,16]}
${R[off,64]}
${R[on,64]}

Exact under load (double buffering on, 16 clients): $wrong of $answers answers differ from a sequential scan.
MD
