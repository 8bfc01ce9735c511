#!/usr/bin/env bash
# bench/gpuivf/compare.sh — k-NN through SQL, same run, same machine:
# codevec gpuivf exact (lists = 1, on the GPU service), codevec IVF,
# codevec's CPU scan, pgvector HNSW (m = 16, ef_construction = 64, ef_search
# swept to recall@10 >= 0.99) and IVFFlat (probes swept, QPS at recall
# >= 0.95 and >= 0.99, as for codevec IVF on the GPU and CPU), and PyTorch matmul + topk on the
# same GPU with the HBM floor. Runs on the CUDA host as root, on the server
# of test/gpu/setup.sh.
#
#   bash bench/gpuivf/compare.sh random N     # N uniform random vectors (bench/seqscan/gen.c)
#   bash bench/gpuivf/compare.sh real N       # N embeddings of real code chunks (embed() on the GPU)
#   bash bench/gpuivf/compare.sh torch N      # the PyTorch anchor alone
#   NOIVF=1 CHECKQ=5 CPU16= ...               # codevec flat only (10M: no IVF,
#                                             # no pgvector, fewer seqscan checks)
#   FLATBENCH=0 IVF=0 PGV=0 HNSW=0            # skip those parts (1 = run, the default)
#
# pgvector is not part of this repository: the script uses it when the
# server has it installed (built beside ours from its public source, for
# the host's CPU class), and skips its rows otherwise. Metric: cosine
# (<=>, codevec_cosine_ops / vector_cosine_ops), k = 10, 1,000 query vectors
# (random: another seed; real: embeddings of 1,000 docstring first lines of
# the host's Python packages), pgbench -M prepared, 10 s per row, 1 and 16
# clients. Recall@10 against the exact answer (the flat index on the GPU,
# itself checked against a sequential scan on 20 queries). Lines starting
# RESULT are the figures.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
kind=${1:?random|real|torch}; n=${2:?rows}
work=/tmp/compare; mkdir -p "$work"; chmod 755 "$work"
T=${T:-10}
. "$top/bench/gpuivf/lib.sh"	# ms, mem, pctl, bench, install_pgvector_kit, fill_random

torch_anchor() {
	python3 - "$1" <<'PY'
import sys, time, torch
n, d = int(sys.argv[1]), 384
x = torch.nn.functional.normalize(torch.randn(n, d, device="cuda"), dim=1).half()
for nq in (1, 16):
    q = torch.nn.functional.normalize(torch.randn(nq, d, device="cuda"), dim=1).half()
    for _ in range(20):
        torch.topk(q @ x.T, 10, dim=1)
    torch.cuda.synchronize()
    ts = []
    for _ in range(200):
        t0 = time.perf_counter()
        torch.topk(q @ x.T, 10, dim=1).indices.cpu()
        ts.append(time.perf_counter() - t0)
    ts.sort()
    print(f"RESULT,torch,matmul_topk,n={n},nq={nq},p50_us={ts[100]*1e6:.0f},qps={nq/ts[100]:.0f}")
src = torch.empty(1 << 28, dtype=torch.float32, device="cuda"); dst = torch.empty_like(src)
for _ in range(3):
    dst.copy_(src)
torch.cuda.synchronize(); t0 = time.perf_counter()
for _ in range(20):
    dst.copy_(src)
torch.cuda.synchronize()
bw = 2 * src.numel() * 4 * 20 / (time.perf_counter() - t0)
print(f"RESULT,torch,hbm,copy_GBps={bw/1e9:.0f},floor_us_fp16={n*d*2/bw*1e6:.0f},floor_us_fp32={n*d*4/bw*1e6:.0f}")
PY
}
[ "$kind" = torch ] && { torch_anchor "$n"; exit 0; }

source "$top/test/gpu/setup.sh" max_parallel_maintenance_workers=15 maintenance_work_mem=16GB max_worker_processes=32
install_pgvector_kit
pgv=$(psql -qAtX -c "SELECT count(*) FROM pg_available_extensions WHERE name = 'vector'")
[ "$pgv" = 1 ] && psql -qX -c "CREATE EXTENSION IF NOT EXISTS vector" >/dev/null
echo "# $kind $n, GPU $(psql -qAtX -c "SELECT device FROM codevec_gpu_status()"), $(nproc) cores, pgvector: $([ "$pgv" = 1 ] && psql -qAtX -c "SELECT extversion FROM pg_extension WHERE extname = 'vector'" || echo absent)"

# --- data ---------------------------------------------------------------------
s0=$(date +%s%N)
psql -qX -c "DROP TABLE IF EXISTS t, q, tv, qv, t_ivf, gt" >/dev/null
psql -qX -c "CREATE TABLE t (id int, emb codevec(384))" -c "CREATE TABLE q (qid int, emb codevec(384))"
if [ "$kind" = random ] && [ "$n" -gt 2000000 ]; then
	# an unlogged table (the host has 64 GB of disk), filled by 4 streams of
	# 2 parts each, generated and copied one after another (ids repeat
	# across parts: the checks compare rows in order, not ids as keys)
	psql -qX -c "DROP TABLE t" -c "CREATE UNLOGGED TABLE t (id int, emb codevec(384))"
	fill_random "$n"
elif [ "$kind" = random ]; then
	"$top/.gpukit/gen" "$n" 384 42 >"$work/v.bin"
	"$top/.gpukit/gen" 1000 384 7 >"$work/q.bin"
	psql -qX -c "\\copy t FROM '$work/v.bin' WITH (FORMAT binary)" -c "\\copy q FROM '$work/q.bin' WITH (FORMAT binary)"
	rm -f "$work/v.bin"
else
	# code chunks (12 lines) and docstring first lines of the host's Python code
	python3 - "$n" "$work" <<'PY'
import glob, re, sys, os
n, work = int(sys.argv[1]), sys.argv[2]
import site, sysconfig
roots = sorted(set(site.getsitepackages() + [sysconfig.get_paths()["stdlib"]]))
files = sorted(os.path.join(d, f) for r in roots for d, _, fs in os.walk(r) for f in fs if f.endswith(".py"))
seen, chunks, docs = set(), [], []
esc = lambda t: t.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
for f in files:
    try:
        lines = open(f, encoding="utf-8").read().splitlines()
    except (UnicodeDecodeError, OSError):
        continue
    for i in range(0, len(lines), 12):
        c = "\n".join(lines[i:i + 12]).strip()
        if len(c) > 40 and c not in seen:
            seen.add(c); chunks.append(c)
    for m in re.finditer(r'def \w+\([^)]*\)[^:]*:\s*\n\s*"""\s*([A-Z][^\n."]{20,100})', "\n".join(lines)):
        docs.append(m.group(1))
    if len(chunks) >= n and len(docs) >= 5000:
        break
print(f"# {len(chunks)} chunks from {len(files)} files, {len(docs)} docstring lines", flush=True)
with open(os.path.join(work, "chunks.tsv"), "w") as o:
    for i, c in enumerate(chunks[:n]):
        o.write(f"{i + 1}\t{esc(c)}\n")
import random
random.seed(7)
with open(os.path.join(work, "queries.tsv"), "w") as o:
    for i, d in enumerate(random.sample(sorted(set(docs)), 1000)):
        o.write(f"{i + 1}\t{esc(d)}\n")
PY
	psql -qX -c "DROP TABLE IF EXISTS chunks, qtext" -c "CREATE UNLOGGED TABLE chunks (id int, t text)" -c "CREATE TABLE qtext (qid int, t text)" \
		-c "\\copy chunks FROM '$work/chunks.tsv'" -c "\\copy qtext FROM '$work/queries.tsv'"
	n=$(psql -qAtX -c "SELECT count(*) FROM chunks")
	for p in $(seq 0 15); do
		psql -qX -c "SET codevec.device = cuda" -c "SET codevec.max_tokens = 128" \
			-c "INSERT INTO t SELECT id, e FROM unnest(ARRAY(SELECT id FROM chunks WHERE id % 16 = $p ORDER BY id), embed(ARRAY(SELECT t FROM chunks WHERE id % 16 = $p ORDER BY id))) AS u(id, e)" &
	done
	wait
	psql -qX -c "SET codevec.device = cuda" -c "INSERT INTO q SELECT qid, embed(t) FROM qtext"
fi
psql -qX -c "VACUUM ANALYZE t" -c "VACUUM ANALYZE q"
echo "RESULT,data,$kind,n=$n,load_ms=$(ms "$s0")"

# --- codevec: flat on the GPU (the exact answer), its CPU scan -----------------
s0=$(date +%s%N); psql -qX -c "CREATE INDEX t_flat ON t USING gpuivf (emb codevec_cosine_ops)"
echo "RESULT,codevec,flat,build_ms=$(ms "$s0"),index_mb=$(psql -qAtX -c "SELECT pg_relation_size('t_flat') >> 20")"
m0=$(mem); s0=$(date +%s%N)
psql -qAtX -c "SET codevec.device = cuda" -c "SELECT id FROM t ORDER BY emb <=> (SELECT emb FROM q WHERE qid = 1) LIMIT 10" >/dev/null
echo "RESULT,codevec,flat,cold_query_ms=$(ms "$s0"),gpu_mb=$(( $(mem) - m0 ))"
psql -qX -c "CREATE TABLE gt (qid int, ids int[])"
psql -qX -c "SET codevec.device = cuda" -c "INSERT INTO gt SELECT qid, ARRAY(SELECT id FROM t ORDER BY emb <=> q.emb LIMIT 10) FROM q"
CHECKQ=${CHECKQ:-20}
bad=$(psql -qAtX -c "SET enable_indexscan = off" -c "SELECT count(*) FROM gt g JOIN q USING (qid) WHERE g.qid <= $CHECKQ AND g.ids IS DISTINCT FROM ARRAY(SELECT id FROM t ORDER BY emb <=> q.emb, ctid LIMIT 10)")
echo "RESULT,codevec,flat,exact_vs_seqscan_mismatches=$bad/$CHECKQ"

QC="SELECT id FROM t ORDER BY emb <=> (SELECT emb FROM q WHERE qid = :q) LIMIT 10;"
if [ "${FLATBENCH:-1}" = 1 ]; then
	bench codevec_flat_gpu "-c codevec.device=cuda" "$QC" 1 16
	T=5 bench codevec_flat_cpu "-c codevec.device=cpu" "$QC" 1 ${CPU16-16}
fi
[ -n "${NOIVF:-}" ] && { psql -X -c "SELECT indexes_loaded, memory_used_mb FROM codevec_gpu_status()"; exit 0; }

lists=$(python3 -c "import math; print(max(10, int(math.sqrt($n))))")
if [ "${IVF:-1}" = 1 ]; then
# --- codevec IVF: recall by probes; at the first probes reaching recall@10
# >= 0.95 and >= 0.99, QPS with the GPU scanning the probed lists and on the CPU
psql -qX -c "CREATE TABLE t_ivf AS SELECT * FROM t" -c "VACUUM ANALYZE t_ivf" >/dev/null
s0=$(date +%s%N); psql -qX -c "CREATE INDEX t_ivf_idx ON t_ivf USING gpuivf (emb codevec_cosine_ops) WITH (lists = $lists)"
echo "RESULT,codevec,ivf,lists=$lists,build_ms=$(ms "$s0")"
m0=$(mem)
psql -qAtX -c "SET codevec.device = cuda" -c "SELECT id FROM t_ivf ORDER BY emb <=> (SELECT emb FROM q WHERE qid = 1) LIMIT 10" >/dev/null
echo "RESULT,codevec,ivf,gpu_mb=$(( $(mem) - m0 ))"
QI="${QC//FROM t /FROM t_ivf }"
at95=""
for probes in 1 4 16 32 64 128 256 512; do
	r=$(psql -qAtX -c "SET codevec.device = cuda" -c "SET gpuivf.probes = $probes" -c "SELECT round(avg((SELECT count(*) FROM unnest(g.ids) i WHERE i = ANY(ARRAY(SELECT id FROM t_ivf ORDER BY emb <=> q.emb LIMIT 10))))::numeric / 10, 4) FROM gt g JOIN q USING (qid) WHERE qid <= 200")
	echo "RESULT,codevec,ivf,probes=$probes,recall10=$r"
	if [ -z "$at95" ] && awk -v r="$r" 'BEGIN {exit !(r >= 0.95)}'; then
		at95=$probes
		bench "codevec_ivf_gpu_probes$probes" "-c codevec.device=cuda -c gpuivf.probes=$probes" "$QI" 1 16
		T=5 bench "codevec_ivf_cpu_probes$probes" "-c codevec.device=cpu -c gpuivf.probes=$probes" "$QI" 1 16
	fi
	if awk -v r="$r" 'BEGIN {exit !(r >= 0.99)}'; then
		[ "$at95" != "$probes" ] && bench "codevec_ivf_gpu_probes$probes" "-c codevec.device=cuda -c gpuivf.probes=$probes" "$QI" 1 16
		[ "$at95" != "$probes" ] && T=5 bench "codevec_ivf_cpu_probes$probes" "-c codevec.device=cpu -c gpuivf.probes=$probes" "$QI" 1 16
		break
	fi
done

fi

# --- pgvector HNSW and IVFFlat ----------------------------------------------------
if [ "$pgv" = 1 ] && [ "${PGV:-1}" = 1 ]; then
	psql -qX -c "CREATE TABLE tv AS SELECT id, emb::real[]::vector(384) AS emb FROM t" \
		-c "CREATE TABLE qv AS SELECT qid, emb::real[]::vector(384) AS emb FROM q" -c "VACUUM ANALYZE tv" -c "VACUUM ANALYZE qv" >/dev/null
	QV="SELECT id FROM tv ORDER BY emb <=> (SELECT emb FROM qv WHERE qid = :q) LIMIT 10;"
	recall_v() { psql -qAtX -c "$1" -c "SELECT round(avg((SELECT count(*) FROM unnest(g.ids) i WHERE i = ANY(ARRAY(SELECT id FROM tv ORDER BY emb <=> qv.emb LIMIT 10))))::numeric / 10, 4) FROM gt g JOIN qv USING (qid) WHERE qid <= 200"; }
	if [ "${HNSW:-1}" = 1 ]; then
	s0=$(date +%s%N)
	psql -qX -c "SET maintenance_work_mem = '16GB'" -c "SET max_parallel_maintenance_workers = 7" -c "CREATE INDEX tv_hnsw ON tv USING hnsw (emb vector_cosine_ops) WITH (m = 16, ef_construction = 64)"
	echo "RESULT,pgvector,hnsw,build_ms=$(ms "$s0"),index_mb=$(psql -qAtX -c "SELECT pg_relation_size('tv_hnsw') >> 20")"
	chosen=""
	for ef in 40 100 200 400 800 1000; do
		r=$(recall_v "SET hnsw.ef_search = $ef")
		echo "RESULT,pgvector,hnsw,ef_search=$ef,recall10=$r"
		[ -z "$chosen" ] && awk -v r="$r" 'BEGIN {exit !(r >= 0.99)}' && chosen=$ef
		[ -n "$chosen" ] && break
	done
	[ -z "$chosen" ] && chosen=1000
	bench "pgvector_hnsw_ef$chosen" "-c hnsw.ef_search=$chosen" "$QV" 1 16
	[ "$chosen" != 40 ] && bench "pgvector_hnsw_ef40" "-c hnsw.ef_search=40" "$QV" 16
	psql -qX -c "DROP INDEX tv_hnsw" >/dev/null
	fi
	s0=$(date +%s%N)
	psql -qX -c "CREATE INDEX tv_ivf ON tv USING ivfflat (emb vector_cosine_ops) WITH (lists = $lists)"
	echo "RESULT,pgvector,ivfflat,lists=$lists,build_ms=$(ms "$s0")"
	at95=""
	for probes in 1 4 16 32 64 128 256 512; do
		r=$(recall_v "SET ivfflat.probes = $probes")
		echo "RESULT,pgvector,ivfflat,probes=$probes,recall10=$r"
		if [ -z "$at95" ] && awk -v r="$r" 'BEGIN {exit !(r >= 0.95)}'; then
			at95=$probes
			bench "pgvector_ivfflat_probes$probes" "-c ivfflat.probes=$probes" "$QV" 1 16
		fi
		if awk -v r="$r" 'BEGIN {exit !(r >= 0.99)}'; then
			[ "$at95" != "$probes" ] && bench "pgvector_ivfflat_probes$probes" "-c ivfflat.probes=$probes" "$QV" 1 16
			break
		fi
	done
fi
psql -X -c "SELECT indexes_loaded, memory_used_mb, requests, batches, round(mean_batch::numeric, 1) AS mean_batch, max_batch FROM codevec_gpu_status()"
