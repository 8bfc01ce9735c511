#!/usr/bin/env bash
# call 7 (warm after d4): the build before (128 candidates for hybrid's vector list) against
# the new one (111: the fp16 kernels' same buffers as 101), swapped with a server restart,
# alternated ROUNDS times: hybrid at 16 clients (T s), hybrid 1 client, vector at 16 clients,
# and the k-NN kernels' device time a batch (the service's stages) during the hybrid run
source test/gpu/setup.sh >/tmp/setup7.log 2>&1 </dev/null; echo "setup rc=$?"
. bench/gpuivf/lib.sh
nvidia-smi --query-gpu=name --format=csv,noheader
export PGDATABASE=linux
lib=$(pg_config --pkglibdir)
T=${T:-8}
[ -f /tmp/codevec-new.so ] || cp "$lib/codevec.so" /tmp/codevec-new.so
(cd /tmp/ext-old && tar xJf ext.tar.xz ./codevec.so && mv codevec.so /tmp/codevec-old.so)
cmp -s /tmp/codevec-old.so /tmp/codevec-new.so && { echo "the two builds are the same file"; exit 2; }
w=$(mktemp -d); chmod 755 $w
for mode in hybrid vector; do
  printf '\\set i random(1, 100)\nSELECT s.id FROM public.bench_questions b, code.search(b.q, k => 10, mode => %s) s WHERE b.i = :i;\n' "'$mode'" > $w/$mode.sql
done
# setup.sh passes its arguments on as server settings: source it without any
setup_again() { source test/gpu/setup.sh >/tmp/setup-swap.log 2>&1; }
swap() {
  gpu_server_stop; cp /tmp/codevec-$1.so "$lib/codevec.so"
  setup_again || { echo "setup failed"; tail -5 /tmp/setup-swap.log; tail -3 /tmp/pgdata/server.log; exit 3; }
  export PGDATABASE=linux
  for _ in $(seq 1 100); do [ "$(psql -qAtX -c "SELECT state FROM codevec_gpu_status()")" = ready ] && break; sleep 0.1; done
  pgbench -n -M prepared -c 16 -j 16 -T 4 -f $w/hybrid.sql >/dev/null 2>&1   # the copy loaded, caches warm
}
for r in $(seq 1 ${ROUNDS:-3}); do
  for b in old new; do
    swap $b
    stages_snap
    pgbench -n -M prepared -c 16 -j 16 -T $T -f $w/hybrid.sql > $w/o16 2>&1
    kern=$(psql -qAtX -c "SELECT round(((s.total_us - o.total_us) / nullif(s.timings - o.timings, 0))::numeric, 1) || ' us a batch of ' || round(((s.requests - o.requests)::numeric / nullif(s.timings - o.timings, 0)), 2) FROM codevec_gpu_stages() s JOIN stages0 o USING (stage) WHERE s.stage = 'knn kernels'")
    pgbench -n -M prepared -c 1 -j 1 -T $((T / 2 + 1)) -f $w/hybrid.sql > $w/o1 2>&1
    pgbench -n -M prepared -c 16 -j 16 -T $((T / 2 + 1)) -f $w/vector.sql > $w/v16 2>&1
    cand=$(psql -qAtX -c "SET client_min_messages = warning" -c "EXPLAIN (ANALYZE, COSTS off, TIMING off) SELECT * FROM code.search('parse a command line argument as an integer')" | grep -o 'candidates [0-9]*' | head -1)
    echo "round $r $b: hybrid16 $(tps $w/o16) QPS; hybrid1 $(grep 'latency average' $w/o1 | awk '{print $4}') ms avg; vector16 $(tps $w/v16) QPS; knn kernels $kern; $cand"
  done
done
date -u
