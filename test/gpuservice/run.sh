#!/usr/bin/env bash
# test/gpuservice/run.sh — the GPU service on a machine without a GPU:
# start, status, the request protocol (ping), restart after the service
# is killed, timeouts, cancellation and a backend leaving mid-request, and
# the errors when the library is not preloaded. Runs its own cluster with
# shared_preload_libraries = codevec. Ends with "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
source "$top/test/lib.sh"
suite_cluster gpuservice 5481
trap 'kill -CONT "${svc:-0}" 2>/dev/null; cluster_stop; rm -rf "$dir"' EXIT


cluster_start shared_preload_libraries=codevec
psql -qX -c "CREATE EXTENSION codevec" >/dev/null
wait_state "no device"
check "the service runs and says why there is no device" \
	"SELECT state || ' / ' || (pid IS NOT NULL) || ' / ' || (message LIKE 'no CUDA device%' OR message LIKE '%without CUDA%') FROM codevec_gpu_status()" \
	"no device / true / true"
check "ping answers through the service" "SELECT codevec_gpu_ping(200) > 0" t
check "requests and batches are counted" \
	"SELECT requests >= 200 AND batches >= 1 AND batches <= requests AND latency_p50_us > 0 AND latency_p99_us >= latency_p50_us FROM codevec_gpu_status()" t
check "bad ping count is 22023" "SELECT codevec_gpu_ping(0)" "ERROR:  ping count must be between 1 and 1000000"

# concurrent clients: every request answered, batches formed under load
for c in 1 2 3 4 5 6 7 8; do psql -qAtX -c "SELECT codevec_gpu_ping(300)" >"$dir/c$c.out" 2>&1 & done
wait
ok=$(cat "$dir"/c*.out | grep -cE '^[0-9.]+$')
check "8 concurrent clients are all answered" "SELECT $ok" 8

# the postmaster restarts a terminated service, with a new generation
gen1=$(psql -qAtX -c "SELECT generation FROM codevec_gpu_status()")
pid1=$(psql -qAtX -c "SELECT pid FROM codevec_gpu_status()")
# gone PID: wait up to 10 s until no process has PID (seen by the OS, not
# by codevec_gpu_status(), which said "no device" before the kill too)
gone() {
	for _ in $(seq 1 100); do
		kill -0 "$1" 2>/dev/null || return 0
		sleep 0.1
	done
	return 1
}
# (the service has no database connection, so pg_terminate_backend cannot
# reach it: signal it as an administrator would)
check "the service's pid is a live process before the kill" "SELECT $(kill -0 "$pid1" 2>/dev/null && echo 1 || echo 0)" 1
kill -TERM "$pid1"
check "the terminated service process exits" "SELECT $(gone "$pid1" && echo 1 || echo 0)" 1
wait_state "no device"
check "the service is restarted with a new pid and generation" \
	"SELECT pid <> $pid1 AND generation > $gen1 FROM codevec_gpu_status()" t
check "ping works after the restart" "SELECT codevec_gpu_ping(10) > 0" t

# a crash (SIGKILL) makes the postmaster reinitialise and start the service again
pid2=$(psql -qAtX -c "SELECT pid FROM codevec_gpu_status()")
kill -KILL "$pid2"
sleep 1
for _ in $(seq 1 100); do psql -qAtX -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2; done
wait_state "no device"
check "the killed service process is gone" "SELECT $(gone "$pid2" && echo 1 || echo 0)" 1
check "after a crash the service is back with a new pid" \
	"SELECT pid <> $pid2 AND state = 'no device' FROM codevec_gpu_status()" t
newpid=$(psql -qAtX -c "SELECT pid FROM codevec_gpu_status()")
check "the new service pid is a live process" "SELECT $(kill -0 "${newpid:-0}" 2>/dev/null && echo 1 || echo 0)" 1

# a service that does not answer: timeout, cancellation, backend exit
svc=$(psql -qAtX -c "SELECT pid FROM codevec_gpu_status()")
kill -STOP "$svc"
check "a request times out with 57014 instead of hanging" \
	"SET codevec.gpu_timeout = 300; SELECT codevec_gpu_ping(1)" \
	"ERROR:  the codevec GPU service did not answer within 300 ms"
check "statement_timeout cancels a waiting request" \
	"SET statement_timeout = 300; SELECT codevec_gpu_ping(1)" \
	"ERROR:  canceling statement due to statement timeout"
psql -qAtX -c "SELECT codevec_gpu_ping(1) /* waiter */" >"$dir/waiter.out" 2>&1 &
waiter=""
for _ in $(seq 1 50); do
	waiter=$(psql -qAtX -c "SELECT pid FROM pg_stat_activity WHERE query LIKE 'SELECT codevec_gpu_ping(1) /* waiter */%' AND pid <> pg_backend_pid()")
	[ -n "$waiter" ] && break
	sleep 0.1
done
check "a backend waits on the stopped service (seen in pg_stat_activity)" "SELECT $([ -n "$waiter" ] && echo 1 || echo 0)" 1
check "pg_terminate_backend reaches the waiting backend" "SELECT pg_terminate_backend(${waiter:-0})" t
wait
for _ in $(seq 1 50); do
	[ "$(psql -qAtX -c "SELECT count(*) FROM pg_stat_activity WHERE pid = ${waiter:-0}")" = 0 ] && break
	sleep 0.1
done
check "the terminated backend is gone from pg_stat_activity" \
	"SELECT count(*) FROM pg_stat_activity WHERE pid = ${waiter:-0}" 0
check "the terminated client was told so" "SELECT $(grep -c 'terminating connection due to administrator command' "$dir/waiter.out")" 1
kill -CONT "$svc"
check "after the service resumes, abandoned slots are freed and 600 pings pass" \
	"SELECT codevec_gpu_ping(600) > 0" t

# a request in flight when the service stops gets an error, not a hang
svc=$(psql -qAtX -c "SELECT pid FROM codevec_gpu_status()")
kill -STOP "$svc"
psql -qAtX -c "SELECT codevec_gpu_ping(1)" >"$dir/inflight.out" 2>&1 &
sleep 0.5
kill -TERM "$svc"
kill -CONT "$svc"
wait
check "a request in flight when the service stops gets an error" "SELECT \$\$$(head -1 "$dir/inflight.out")\$\$" \
	"ERROR:  the codevec GPU service restarted while serving this request"
wait_state "no device"

# embed() and codevec.device with a service that has no device: auto falls
# back to the CPU encoder with one WARNING per session (none in a build
# without CUDA, where the CPU is the only device), cuda is an error
cuda_built=$(psql -qAtX -c "SELECT cuda_compiled FROM codevec_build_info()")
want_warnings=$([ "$cuda_built" = t ] && echo 1 || echo 0)
# embed_warnings REASON: "W A" for three embed() calls in one session: W
# warnings naming REASON, A answers (3 when every call answered: a count of
# 0 warnings alone would also be what calls that all failed print)
embed_warnings() {
	local out
	out=$(psql -qAtX -c "SELECT embed('one') IS NOT NULL" -c "SELECT embed(ARRAY['two', 'three']) IS NOT NULL" \
		-c "SELECT embed('four') IS NOT NULL" 2>&1)
	echo "$(grep -c "WARNING:  codevec: using the CPU: $1" <<<"$out") $(grep -cx t <<<"$out")"
}
check "auto: embed() without a device warns once per session ($want_warnings), then uses the CPU" \
	"SELECT '$(embed_warnings 'no CUDA device\|codevec was built without CUDA')'" "$want_warnings 3"
# every request answered on the CPU instead is counted (a CUDA build: the
# three embed() calls of each session above; a build without CUDA has no
# fallback: the CPU is its device) and cuda errors are not
f0=$(psql -qAtX -c "SELECT fallbacks FROM codevec_gpu_status()")
embed_warnings x >/dev/null
f1=$(psql -qAtX -c "SELECT fallbacks FROM codevec_gpu_status()")
psql -qAtX -c "SET codevec.device = cuda" -c "SELECT embed('x')" >/dev/null 2>&1
f2=$(psql -qAtX -c "SELECT fallbacks FROM codevec_gpu_status()")
check "auto: codevec_gpu_status().fallbacks counts each embed() answered on the CPU ($([ "$cuda_built" = t ] && echo 3 || echo 0))" \
	"SELECT $((f1 - f0))" "$([ "$cuda_built" = t ] && echo 3 || echo 0)"
check "cuda: an error is not a fallback (the count stays)" "SELECT $((f2 - f1))" 0
check "auto: the CPU fallback gives the CPU encoder's vectors" \
	"SET codevec.device = cpu; CREATE TEMP TABLE e AS SELECT embed('parse a config file') AS v; SET codevec.device = auto; SELECT v = embed('parse a config file') FROM e" t
check "cuda: embed() without a device is an error (55000)" \
	"DO \$\$ BEGIN SET LOCAL codevec.device = cuda; PERFORM embed('x'); EXCEPTION WHEN OTHERS THEN RAISE NOTICE 'sqlstate %', SQLSTATE; END \$\$" \
	"NOTICE:  sqlstate 55000"
check "cuda: embed(text[]) without a device is an error too" \
	"SET codevec.device = cuda; SELECT embed(ARRAY['x'])" \
	"HINT:  Set codevec.device = auto to fall back to the CPU, or see codevec_gpu_status()."

check "codevec_gpu_autotune without a device is 55000" \
	"DO \$\$ BEGIN PERFORM codevec_gpu_autotune(384); EXCEPTION WHEN OTHERS THEN RAISE NOTICE 'sqlstate %', SQLSTATE; END \$\$" \
	"NOTICE:  sqlstate 55000"

# codevec.device is a checked enum
check "codevec.device rejects unknown values" "SET codevec.device = 'tpu'" \
	'HINT:  Available values: auto, cpu, cuda.'

# gpuivf scans and EXPLAIN with a service that has no device (issue 6):
# auto scans on the CPU and EXPLAIN says why, cuda fails and EXPLAIN says so
psql -qX -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE TABLE gx (id int, emb codevec(8));
INSERT INTO gx SELECT i, (SELECT array_agg(((i * 7 + j) % 13)::real) FROM generate_series(1, 8) j) FROM generate_series(1, 3000) i;
CREATE INDEX gx_l2 ON gx USING gpuivf (emb codevec_l2_ops);
ANALYZE gx;
SQL
gx_explain() {
	psql -qAtX -c "SET enable_seqscan = off" -c "SET codevec.device = $1" \
		-c "EXPLAIN $2 SELECT id FROM gx ORDER BY emb <-> (SELECT emb FROM gx WHERE id = 5) LIMIT 5" 2>&1
}
check "gpuivf.gpu_min_rows defaults to 0: the measured break-even" "SHOW gpuivf.gpu_min_rows" 0
check "auto: EXPLAIN says the scan runs on the CPU and why (no device)" \
	"SELECT $(gx_explain auto "(COSTS OFF)" | grep -c '^gpuivf: gx_l2 on CPU (GPU service: no device: ')" 1
check "auto: EXPLAIN ANALYZE says what the scan did" \
	"SELECT $(gx_explain auto "(ANALYZE, COSTS OFF, TIMING OFF)" | grep -c '^gpuivf: gx_l2 on CPU (GPU service: no device: .*; scans 1, rows 5)$')" 1
check "auto: the scan on the CPU equals the sequential scan" \
	"SET enable_seqscan = off; CREATE TEMP TABLE a AS SELECT id FROM gx ORDER BY emb <-> (SELECT emb FROM gx WHERE id = 5) LIMIT 20;
	 SET enable_seqscan = on; SET enable_indexscan = off;
	 SELECT array_agg(id) = (SELECT array_agg(id) FROM (SELECT id FROM gx ORDER BY emb <-> (SELECT emb FROM gx WHERE id = 5), ctid LIMIT 20) s) FROM a" t
check "cuda: EXPLAIN says the scan fails and why" \
	"SELECT $(gx_explain cuda "(COSTS OFF)" | grep -c '^gpuivf: gx_l2 fails (codevec.device is cuda but the GPU service cannot serve: ')" 1
check "cuda: the index scan is an error (55000)" \
	"DO \$\$ BEGIN SET LOCAL codevec.device = cuda; SET LOCAL enable_seqscan = off;
	 PERFORM id FROM gx ORDER BY emb <-> (SELECT emb FROM gx WHERE id = 5) LIMIT 5;
	 EXCEPTION WHEN OTHERS THEN RAISE NOTICE 'sqlstate %', SQLSTATE; END \$\$" \
	"NOTICE:  sqlstate 55000"
check "cuda: EXPLAIN ANALYZE fails like the query" \
	"SELECT $(gx_explain cuda "(ANALYZE)" | grep -c '^ERROR:  codevec.device is cuda but the GPU service cannot serve')" 1
check "codevec_gpu_routing: ping measured through the service, a break-even, the decision" \
	"SELECT metric || ' ' || dims || ' ' || (ping_us > 0) || ' ' || (break_even_rows > 0) || ' ' || (min_rows = break_even_rows) || ' ' || device FROM codevec_gpu_routing('gx_l2')" \
	"l2 8 true true true CPU"
# measured once per server: a new session reads the first one's numbers
# (the same bits; measuring again would time other nanoseconds)
routing() { psql -qAtX -c "SET extra_float_digits = 3" -c "SELECT cpu_ns_per_row || ' ' || ping_us || ' ' || calibration_rows FROM codevec_gpu_routing('gx_l2')"; }
r1=$(routing); r2=$(routing)
if [ -n "$r1" ] && [ "$r1" = "$r2" ]; then tap_ok "codevec_gpu_routing: a second session has the first one's calibration and ping, not new ones ($r1)"
else tap_not_ok "codevec_gpu_routing in two sessions: '$r1' then '$r2'"; fi

# not preloaded: absent, and a clear error
bash "$top/test/cluster.sh" stop "$dir" >/dev/null
sed -i "/^shared_preload_libraries/d" "$dir/data/postgresql.conf"
eval "$(bash "$top/test/cluster.sh" start "$dir" "$port")"
check "without shared_preload_libraries the service is absent" \
	"SELECT state || ' / ' || message FROM codevec_gpu_status()" "absent / codevec is not in shared_preload_libraries"
check "ping without the service is 55000" "SELECT codevec_gpu_ping(1)" \
	"HINT:  Add codevec to shared_preload_libraries and restart the server."

check "not preloaded, auto: embed() warns once ($want_warnings) and uses the CPU" \
	"SELECT '$(embed_warnings 'codevec is not in shared_preload_libraries')'" "$want_warnings 3"
check "not preloaded, cuda: embed() says the library is not preloaded" \
	"SET codevec.device = cuda; SELECT embed('x')" \
	"ERROR:  codevec.device is cuda but the GPU service cannot serve: codevec is not in shared_preload_libraries"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
