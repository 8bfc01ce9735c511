#!/usr/bin/env bash
# test/gpu/sanitize.sh — GPU test target (not CI): the server itself under
# NVIDIA compute-sanitizer, on a CUDA host, as root (kit as for
# test/gpu/run.sh; the model copy too when the embed step should run).
#
#   bash test/gpu/sanitize.sh [TOOL]      (memcheck by default; racecheck,
#                                          synccheck, initcheck also work)
#
# Starts the postmaster under compute-sanitizer (every process it forks is
# followed, the GPU service among them), runs each kind of GPU request on
# small data: flat k-NN (k = 10 and past the largest batch), an IVF scan of
# probed lists, a codevec_knn batch, delta appends after inserts, a reload
# after VACUUM, an encoder batch when the model is installed; stops the
# server and requires "ERROR SUMMARY: 0 errors" from every process log.
# Ends with "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
tool=${1:-memcheck}
set --
source "$top/test/gpu/setup.sh"
bin=/opt/pgkit/usr/lib/postgresql/15/bin
lib=/opt/pgkit/usr/lib/x86_64-linux-gnu
san=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
[ -x "$san" ] || { echo "not ok 1 - compute-sanitizer not found"; echo "0 passed, 1 failed"; exit 1; }
su pg -c "LD_LIBRARY_PATH=$lib $bin/pg_ctl -D /tmp/pgdata -m fast -w stop" >/dev/null
rm -rf /tmp/san && mkdir -p /tmp/san && chown pg /tmp/san
su pg -c "cd /tmp && LD_LIBRARY_PATH=$lib nohup $san --tool $tool --target-processes all \
	--log-file /tmp/san/%p.log $bin/postgres -D /tmp/pgdata -k /tmp -c listen_addresses='' \
	-c shared_preload_libraries=codevec -c max_connections=50 -c jit=off \
	-c codevec.gpu_timeout=600000 >/tmp/san/server.out 2>&1 &"
for _ in $(seq 1 240); do pg_isready -q -h /tmp && break; sleep 0.5; done
for _ in $(seq 1 240); do
	[ "$(psql -qAtX -c "SELECT state FROM codevec_gpu_status()" 2>/dev/null)" = ready ] && break; sleep 0.5
done
check "the GPU service is ready under compute-sanitizer $tool" "SELECT state FROM codevec_gpu_status()" ready

"$kit/gen" 20000 384 42 >/tmp/svec.bin
"$kit/gen" 20 384 7 >/tmp/sq.bin
psql -qX -v ON_ERROR_STOP=1 <<'SQL'
DROP TABLE IF EXISTS ts, qs;
CREATE TABLE ts (id int, emb codevec(384));
CREATE TABLE qs (qid int, emb codevec(384));
\copy ts FROM '/tmp/svec.bin' WITH (FORMAT binary)
\copy qs FROM '/tmp/sq.bin' WITH (FORMAT binary)
CREATE INDEX ts_flat ON ts USING gpuivf (emb codevec_cosine_ops);
CREATE INDEX ts_ivf ON ts USING gpuivf (emb codevec_l2_ops) WITH (lists = 20);
VACUUM ANALYZE ts;
SQL
q="(SELECT emb FROM qs WHERE qid = 3)"
c0=$(gpu_counters)
check "flat k=10 on the GPU equals the CPU" \
	"SET codevec.device = cuda; CREATE TEMP TABLE g AS SELECT array_agg(id) a FROM (SELECT id FROM ts ORDER BY emb <=> $q LIMIT 10) s;
	 SET codevec.device = cpu; SELECT a = (SELECT array_agg(id) FROM (SELECT id FROM ts ORDER BY emb <=> $q LIMIT 10) s) FROM g" t
check "flat past the largest batch (1500 rows)" \
	"SET codevec.device = cuda; SELECT count(*) FROM (SELECT id FROM ts ORDER BY emb <=> $q LIMIT 1500) s" 1500
check "IVF probes 4 on the GPU equals the CPU" \
	"SET gpuivf.probes = 4; SET codevec.device = cuda; CREATE TEMP TABLE g AS SELECT array_agg(id) a FROM (SELECT id FROM ts ORDER BY emb <-> $q LIMIT 10) s;
	 SET codevec.device = cpu; SELECT a = (SELECT array_agg(id) FROM (SELECT id FROM ts ORDER BY emb <-> $q LIMIT 10) s) FROM g" t
check "codevec_knn batch of 20 queries" \
	"SET codevec.device = cuda; SELECT count(*) FROM codevec_knn('ts_flat', ARRAY(SELECT emb FROM qs), 10)" 200
psql -qX -c "INSERT INTO ts SELECT 100000 + qid, emb FROM qs" >/dev/null
check "after inserts (delta append) a query equal to a new row finds it" \
	"SET codevec.device = cuda; SELECT id FROM ts ORDER BY emb <=> $q LIMIT 1" 100003
psql -qX -c "DELETE FROM ts WHERE id % 5 = 0" -c "VACUUM ts" >/dev/null
check "after VACUUM (reload) flat and IVF answer" \
	"SET codevec.device = cuda; SELECT (SELECT count(*) FROM (SELECT id FROM ts ORDER BY emb <=> $q LIMIT 10) s) + (SELECT count(*) FROM (SELECT id FROM ts ORDER BY emb <-> $q LIMIT 10) s)" 20
if [ -f "$(pg_config --sharedir)/extension/codevec_models/default/model.safetensors" ]; then
	check "embed on the GPU (a batch of 64)" \
		"SET codevec.device = cuda; SELECT count(*) FROM unnest(embed(ARRAY(SELECT 'def f' || g || '(x): return x * ' || g FROM generate_series(1, 64) g)))" 64
fi
gpu_answered "every request above" "$c0" 8
psql -qX -c "DROP TABLE ts, qs" >/dev/null
su pg -c "LD_LIBRARY_PATH=$lib $bin/pg_ctl -D /tmp/pgdata -m fast -w -t 300 stop" >/dev/null
sleep 2
cuda_logs=$(grep -l "ERROR SUMMARY" /tmp/san/*.log 2>/dev/null | wc -l)
bad=$(grep -h "ERROR SUMMARY" /tmp/san/*.log 2>/dev/null | grep -vc "ERROR SUMMARY: 0 errors")
echo "# process logs with a summary: $cuda_logs; summaries:"
grep -h "ERROR SUMMARY" /tmp/san/*.log | sort | uniq -c | sed 's/^/#   /'
grep -h -B2 -A12 "^========= Invalid\|^========= Race\|^========= Barrier\|^========= Uninitialized" /tmp/san/*.log | head -60
[ "$cuda_logs" -gt 0 ] && [ "$bad" = 0 ] && { passed=$((passed + 1)); echo "ok $((passed + failed)) - compute-sanitizer $tool: 0 errors in every process"; } \
	|| { failed=$((failed + 1)); echo "not ok $((passed + failed)) - compute-sanitizer $tool: $bad processes with errors ($cuda_logs logs)"; }
rm -f /tmp/.codevec-gpu-setup		# the next script starts the server afresh
cp -r /tmp/san "${OUT:-/tmp}/sanitizer-$tool" 2>/dev/null
tap_result
