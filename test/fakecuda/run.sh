#!/usr/bin/env bash
# test/fakecuda/run.sh — the GPU service's several-device path (issue 19)
# without a GPU: codevec.so built with CODEVEC_USE_CUDA against
# test/fakecuda/fakecuda.c (two fake GPUs of 1 GB, brute-force k-NN with the
# canonical distance; build.sh) runs the real service code: devices opened
# from codevec.gpu_devices (and the codevec.gpu_device alias, and a bad
# ordinal), copies split into row ranges on both devices (uploads across
# range boundaries, three opclasses, flat and IVF, a delta tier, masked
# rows) with answers equal to sequential scans, replication under load
# with 8 concurrent clients, the per-device rows of codevec_gpu_devices(),
# and one device listed; with test/fakecuda/fakeencoder.c as the encoder
# library, embed() requests started among the kNN batches and answered
# later, each with its own text's answer. What it cannot check: the CUDA kernels themselves
# and the speed (test/gpu/multigpu.sh, bench/gpuivf/multigpu.sh).
#
# It installs the fake build in place of the installed codevec.so for its
# run and puts the installed files back when it ends (run it under
# /tmp/codevec-db.lock, as every suite that installs). Ends with
# "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
source "$top/test/lib.sh"
suite_cluster fakecuda 5661
lib=$(pg_config --pkglibdir)
ext=$(pg_config --sharedir)/extension
ver=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$top/codevec.control")
# A library is put in place with install(1), which unlinks the file it
# replaces: a process that has the old one mapped (a server outside this
# suite, the postmaster of a shared_preload_libraries cluster) keeps its
# copy, where cp would rewrite the pages under it (SIGBUS).
# fake_encoder_out: the fake encoder library (installed below) out again,
# and a real one back if there was one
fake_encoder_out() {
	[ -f "$dir/fake-encoder-installed" ] || return 0
	rm -f "$lib/codevec_cuda_encoder.so" "$dir/fake-encoder-installed"
	[ -f "$dir/saved/codevec_cuda_encoder.so" ] && install -m 755 "$dir/saved/codevec_cuda_encoder.so" "$lib/"
	return 0
}
restore() {
	bash "$top/test/cluster.sh" stop "$dir" >/dev/null 2>&1
	[ -f "$dir/saved/codevec.so" ] && install -m 755 "$dir/saved/codevec.so" "$lib/codevec.so"
	fake_encoder_out
	[ -f "$dir/saved/codevec--$ver.sql" ] && cp "$dir/saved/codevec--$ver.sql" "$ext/"
	rm -rf "$dir"
}
trap restore EXIT

# restart SETTINGS...: the cluster again with these settings (later lines win)
restart() {
	bash "$top/test/cluster.sh" stop "$dir" >/dev/null
	eval "$(bash "$top/test/cluster.sh" start "$dir" "$port" "$@")" || exit 1
	export PGDATABASE=postgres
}

# the fake build, installed over the real one for this run
bash "$top/test/fakecuda/build.sh" "$dir/build" || { echo "not ok 1 - the fake-GPU build"; echo "0 passed, 1 failed"; exit 1; }
mkdir -p "$dir/saved"
cp "$lib/codevec.so" "$ext/codevec--$ver.sql" "$dir/saved/" 2>/dev/null
install -m 755 "$dir/build/codevec.so" "$lib/codevec.so"
cp "$dir/build/sql/codevec--$ver.sql" "$ext/"

eval "$(bash "$top/test/cluster.sh" start "$dir" "$port" shared_preload_libraries=codevec \
	codevec.gpu_devices=0,1 codevec.gpu_split_rows=3000 codevec.gpu_replicate_rate=0 codevec.gpu_prewarm=off)" || exit 1
export PGDATABASE=postgres
psql -qX -c "CREATE EXTENSION codevec" >/dev/null
wait_state ready
check "the service is ready on two fake GPUs" \
	"SELECT state || ' / ' || device || ' / ' || memory_total_mb FROM codevec_gpu_status()" "ready / Fake GPU 0 / 2048"
check "codevec_gpu_devices(): one row per entry" \
	"SELECT string_agg(device || ':' || ordinal || ':' || name || ':' || memory_total_mb, ' ' ORDER BY device) FROM codevec_gpu_devices()" \
	"0:0:Fake GPU 0:1024 1:1:Fake GPU 1:1024"

# data: 10,000 random rows x 32 and 100 exact duplicates at the end (ties
# across ranges); 20 queries, 3 equal to rows
psql -qX -v ON_ERROR_STOP=1 <<'SQL' >/dev/null || { echo "not ok - data"; echo "$passed passed, $((failed + 1)) failed"; exit 1; }
SELECT setseed(0.42);
CREATE TABLE mt (id int, emb codevec(32));
INSERT INTO mt SELECT i, (SELECT array_agg(round((random() * 2 - 1)::numeric, 2)::real) FROM generate_series(1, 32) WHERE i > 0)::codevec
FROM generate_series(1, 10000) i;
INSERT INTO mt SELECT id + 10000, emb FROM mt WHERE id <= 100;
CREATE TABLE mq (qid int, emb codevec(32));
INSERT INTO mq SELECT i, (SELECT array_agg(round((random() * 2 - 1)::numeric, 2)::real) FROM generate_series(1, 32) WHERE i > 0)::codevec
FROM generate_series(1, 20) i;
UPDATE mq SET emb = (SELECT emb FROM mt WHERE mt.id = mq.qid) WHERE qid <= 3;
VACUUM ANALYZE mt; VACUUM ANALYZE mq;
CREATE INDEX mt_l2 ON mt USING gpuivf (emb codevec_l2_ops);
CREATE INDEX mt_ip ON mt USING gpuivf (emb codevec_ip_ops);
CREATE INDEX mt_cos ON mt USING gpuivf (emb codevec_cosine_ops);
SET codevec.device = cpu;
CREATE INDEX mt_ivf_l2 ON mt USING gpuivf (emb codevec_l2_ops) WITH (lists = 20);
CREATE INDEX mt_ivf_cos ON mt USING gpuivf (emb codevec_cosine_ops) WITH (lists = 20);
SQL

# only / same / knn: the exactness checks (test/lib-knn.sh), every list probed
PROBES=20
source "$top/test/lib-knn.sh"
fallbacks() { psql -qAtX -c "SELECT fallbacks FROM codevec_gpu_status()"; }

# ---- split: 10,100 rows in ranges of at most 3,000: 4 ranges a copy
f0=$(fallbacks)
for pair in 'mt_l2 <->' 'mt_ip <#>' 'mt_cos <=>'; do
	set -- $pair
	for k in 1 10 100 1000; do same "$1" "$2" "$k" "split: "; done
done
for pair in 'mt_ivf_l2 <->' 'mt_ivf_cos <=>'; do
	set -- $pair
	for k in 10 100; do same "$1" "$2" "$k" "split IVF: "; done
done
knn mt_l2 '<->' 10 "split: "
knn mt_cos '<=>' 100 "split: "
knn mt_ivf_l2 '<->' 10 "split IVF: "
check "split: no request fell back to the CPU" "SELECT fallbacks = $f0 FROM codevec_gpu_status()" t
check "split: 5 copies of 4 ranges, 2 on each device, no whole copy" \
	"SELECT string_agg(device || ':' || copies || '/' || ranges, ' ' ORDER BY device) FROM codevec_gpu_devices()" "0:0/10 1:0/10"
check "split: both devices ran requests and hold the ranges' memory" \
	"SELECT bool_and(requests > 0 AND held_mb >= 0) AND sum(memory_used_mb) > 0 FROM codevec_gpu_devices()" t
check "split: the status row counts 5 copies" "SELECT indexes_loaded FROM codevec_gpu_status()" 5

psql -qX -c "INSERT INTO mt SELECT id + 20000, emb FROM mt WHERE id BETWEEN 101 AND 300" >/dev/null
same mt_l2 '<->' 10 "split + delta tier: "
same mt_l2 '<->' 1000 "split + delta tier: "
knn mt_l2 '<->' 100 "split + delta tier: "
psql -qX -c "DELETE FROM mt WHERE id % 97 = 0" -c "VACUUM mt" >/dev/null
same mt_l2 '<->' 100 "split + masked rows: "
same mt_cos '<=>' 10 "split + masked rows: "
knn mt_cos '<=>' 10 "split + masked rows: "
same mt_ivf_cos '<=>' 10 "split IVF after VACUUM: "

# ---- replication: whole copies, hot at 1 request a second
psql -qX -c "DROP INDEX mt_ivf_l2, mt_ivf_cos" >/dev/null
restart codevec.gpu_split_rows=0 codevec.gpu_replicate_rate=1
wait_state ready
same mt_cos '<=>' 10 "whole: "
psql -qX -c "SET codevec.device = cuda" -c "SET enable_seqscan = off" -c "DO \$\$
	DECLARE t0 timestamptz := clock_timestamp(); x int;
	BEGIN
		WHILE clock_timestamp() - t0 < interval '1.5 s' LOOP
			SELECT id INTO x FROM mt ORDER BY emb <=> (SELECT emb FROM mq WHERE qid = 7) LIMIT 1;
		END LOOP;
	END \$\$" >/dev/null
check "replication: the hot copy got a replica on the other device" \
	"SELECT string_agg(device || ':' || copies || '/' || ranges || '/' || replicas, ' ' ORDER BY device) FROM codevec_gpu_devices()" "0:1/0/0 1:0/0/1"
read -r a0 b0 <<<"$(psql -qAtX -c "SELECT string_agg(requests::text, ' ' ORDER BY device) FROM codevec_gpu_devices()")"
same mt_cos '<=>' 10 "replicated: "
same mt_cos '<=>' 1000 "replicated: "
knn mt_cos '<=>' 10 "replicated (queries shared): "
psql -qX -c "CREATE TABLE mres (client int, qid int, ids int[])" -c "SET codevec.device = cpu" -c "SET enable_indexscan = off" \
	-c "CREATE TABLE mexp AS SELECT qid, (SELECT array_agg(id) FROM (SELECT id FROM mt ORDER BY emb <=> mq.emb, ctid LIMIT 10) s) ids FROM mq" >/dev/null
clients 5 "$dir/client"
wait
check "8 concurrent clients on a replicated copy: 800 answers, all equal to sequential scans" \
	"SELECT count(*) || ' ' || count(*) FILTER (WHERE r.ids IS DISTINCT FROM e.ids) FROM mres r JOIN mexp e USING (qid)" "800 0"
read -r a1 b1 <<<"$(psql -qAtX -c "SELECT string_agg(requests::text, ' ' ORDER BY device) FROM codevec_gpu_devices()")"
check "replication: both devices ran requests meanwhile ($a0 -> $a1, $b0 -> $b1)" \
	"SELECT $(( ${a1:-0} > ${a0:-0} && ${b1:-0} > ${b0:-0} ))" 1

# ---- double buffering: one whole copy, each started batch "on the device"
# for 2 ms (CODEVEC_FAKE_KNN_US), 8 clients: batches start while the one
# before is in flight and are answered when done; answers stay exact; a
# multi-query codevec_knn (answered in place, not started) runs among them
CODEVEC_FAKE_KNN_US=2000 restart codevec.gpu_devices=0 codevec.gpu_split_rows=0 codevec.gpu_replicate_rate=0
wait_state ready
same mt_cos '<=>' 10 "double buffering, one client: "
psql -qX -c "TRUNCATE mres" >/dev/null
clients 5 "$dir/client"
psql -qX -c "SET codevec.device = cuda" -c "DO \$\$
	BEGIN
		FOR i IN 1..20 LOOP
			PERFORM count(*) FROM codevec_knn('mt_cos', ARRAY(SELECT emb FROM mq ORDER BY qid), 10);
		END LOOP;
	END \$\$" \
	>"$dir/client9.out" 2>&1 &
wait
check "double buffering: 8 concurrent clients, 800 answers, all equal to sequential scans" \
	"SELECT count(*) || ' ' || count(*) FILTER (WHERE r.ids IS DISTINCT FROM e.ids) FROM mres r JOIN mexp e USING (qid)" "800 0"
check "double buffering: batches started while another was in flight, and answered after" \
	"SELECT bool_and(timings > 0) FROM codevec_gpu_stages() WHERE stage IN ('overlap', 'finish')" t
check "double buffering: no request fell back to the CPU" "SELECT fallbacks FROM codevec_gpu_status()" 0

# ---- embeds among the kNN batches: code.search posts an EMBED, then a KNN,
# so under load batches hold both; an EMBED group runs beside the started
# kNN groups of its batch and those in flight (gpuloop.c). The fake has no
# encoder: the service answers the EMBED requests with an error and the
# backends (codevec.device = auto) embed on the CPU
psql -qX -c "TRUNCATE mres" -c "CREATE TABLE memb (client int, i int, v codevec)" >/dev/null
r0=$(psql -qAtX -c "SELECT requests FROM codevec_gpu_status()")
clients 5 "$dir/client"
for c in 9 10; do
	psql -qX -c "SET codevec.device = auto" -c "SET client_min_messages = error" -c "DO \$\$
		BEGIN
			FOR i IN 1..40 LOOP
				INSERT INTO memb VALUES ($c, i, embed('open a file, number ' || i));
			END LOOP;
		END \$\$" >"$dir/client$c.out" 2>&1 &
done
wait
r1=$(psql -qAtX -c "SELECT requests FROM codevec_gpu_status()")
check "embeds among started kNN batches: 800 kNN answers, all equal to sequential scans" \
	"SELECT count(*) || ' ' || count(*) FILTER (WHERE r.ids IS DISTINCT FROM e.ids) FROM mres r JOIN mexp e USING (qid)" "800 0"
check "embeds among started kNN batches: the service answered more than the 800 kNN requests ($r0 -> $r1)" \
	"SELECT $r1 - $r0 > 800" t
check "embeds among started kNN batches: 80 embeddings, each the CPU's" \
	"SET codevec.device = cpu; SELECT count(*) || ' ' || count(*) FILTER (WHERE v IS DISTINCT FROM embed('open a file, number ' || i)) FROM memb" "80 0"

# ---- started embeds: a fake encoder library (fakeencoder.c, loaded by the
# service with dlopen as the real one: an "embedding" is the sequence's
# token ids repeated, so every answer is checked against its own text
# through codevec_tokenize; each encode "runs" 1.5 ms) makes the service
# start EMBED groups among the started kNN batches and answer them later
# (gpuembed.c's EmbedStartGroup, gpuloop.c); an array of 100 texts is more
# than the fake takes in one launch, so it runs synchronously. Under
# codevec.device = cuda a failed request is an ERROR, not the CPU
mkdir -p "$dir/saved"
gcc -O2 -Wall -shared -fPIC -I"$top/cuda" -o "$dir/fakeencoder.so" "$top/test/fakecuda/fakeencoder.c"
[ -f "$lib/codevec_cuda_encoder.so" ] && cp "$lib/codevec_cuda_encoder.so" "$dir/saved/"
touch "$dir/fake-encoder-installed"
install -m 755 "$dir/fakeencoder.so" "$lib/codevec_cuda_encoder.so"
CODEVEC_FAKE_KNN_US=2000 CODEVEC_FAKE_EMBED_US=1500 restart codevec.gpu_devices=0 codevec.gpu_split_rows=0 codevec.gpu_replicate_rate=0
wait_state ready
# fake(t): what the fake encoder answers for text t
psql -qX -c "TRUNCATE mres" -c "CREATE TABLE memb2 (client int, i int, t text, v codevec)" \
	-c "CREATE FUNCTION fake(t text) RETURNS real[] LANGUAGE sql AS
		\$\$ SELECT array_agg(ids[(j % cardinality(ids)) + 1]::real ORDER BY j) FROM (SELECT codevec_tokenize(t) ids) x, generate_series(0, 383) j \$\$" >/dev/null
s0=$(psql -qAtX -c "SELECT timings FROM codevec_gpu_stages() WHERE stage = 'embed start'")
clients 5 "$dir/client"
for c in 9 10 11 12 13 14; do
	psql -qX -c "SET codevec.device = cuda" -c "DO \$\$
		BEGIN
			FOR i IN 1..30 LOOP
				INSERT INTO memb2 SELECT $c, i, t, embed(t) FROM format('open file %s of client %s', i, $c) t;
			END LOOP;
		END \$\$" >"$dir/client$c.out" 2>&1 &
done
psql -qX -c "SET codevec.device = cuda" -c "INSERT INTO memb2 SELECT 15, o, t, v FROM unnest(
		ARRAY(SELECT 'close socket number ' || g FROM generate_series(1, 100) g),
		embed(ARRAY(SELECT 'close socket number ' || g FROM generate_series(1, 100) g))) WITH ORDINALITY u(t, v, o)" \
	>"$dir/client15.out" 2>&1 &
wait
s1=$(psql -qAtX -c "SELECT timings FROM codevec_gpu_stages() WHERE stage = 'embed start'")
check "started embeds: 6 clients x 30 texts and an array of 100 among kNN batches, each answer its own text's" \
	"SELECT count(*) || ' ' || count(*) FILTER (WHERE v::real[] IS DISTINCT FROM fake(t)) FROM memb2" "280 0"
check "started embeds: the service started encoder calls ($s0 -> $s1) and answered them after" \
	"SELECT ${s1:-0} - ${s0:-0} >= 10 AND (SELECT timings > 0 FROM codevec_gpu_stages() WHERE stage = 'finish')" t
check "started embeds: no client failed" "SELECT '$(cat "$dir"/client9.out "$dir"/client1[0-5].out | grep -c ERROR)'" 0
check "started embeds: 800 kNN answers among them, all equal to sequential scans" \
	"SELECT count(*) || ' ' || count(*) FILTER (WHERE r.ids IS DISTINCT FROM e.ids) FROM mres r JOIN mexp e USING (qid)" "800 0"
psql -qX -c "ALTER SYSTEM SET codevec.gpu_double_buffer = off" -c "SELECT pg_reload_conf()" -c "SELECT pg_sleep(0.3)" >/dev/null
s0=$(psql -qAtX -c "SELECT timings FROM codevec_gpu_stages() WHERE stage = 'embed start'")
check "started embeds: with codevec.gpu_double_buffer = off (every group run synchronously) the same answers" \
	"SET codevec.device = cuda; SELECT count(*) || ' ' || count(*) FILTER (WHERE embed(t)::real[] IS DISTINCT FROM fake(t)) FROM memb2 WHERE client IN (9, 15)" "130 0"
check "started embeds: with codevec.gpu_double_buffer = off nothing was started" \
	"SELECT timings - ${s0:-0} FROM codevec_gpu_stages() WHERE stage = 'embed start'" 0
psql -qX -c "ALTER SYSTEM RESET codevec.gpu_double_buffer" -c "SELECT pg_reload_conf()" >/dev/null
# ---- each started group answered on its own (gpuloop.c's AnswerGroup): a
# kNN batch held "on the device" for 4 s (CODEVEC_FAKE_KNN_US), then an
# embed() posted behind it: its encoder call (1.5 ms) is answered when done,
# not when the older kNN batch is (which took it past its 1.5 s timeout),
# and its batch gives its place up, so a second embed() is taken at once
CODEVEC_FAKE_KNN_US=4000000 CODEVEC_FAKE_EMBED_US=1500 restart codevec.gpu_devices=0 codevec.gpu_split_rows=0 codevec.gpu_replicate_rate=0
wait_state ready
psql -qX -c "SET codevec.device = cuda" -c "SET enable_seqscan = off" \
	-c "SELECT count(*) FROM (SELECT id FROM mt ORDER BY emb <=> (SELECT emb FROM mq WHERE qid = 1) LIMIT 10) s" >/dev/null
psql -qAtX -c "SET codevec.device = cuda" -c "SET enable_seqscan = off" \
	-c "SELECT array_agg(id) FROM (SELECT id FROM mt ORDER BY emb <=> (SELECT emb FROM mq WHERE qid = 3) LIMIT 10) s" >"$dir/held.out" 2>&1 &
held=$!
# until its backend waits for the service (its request posted and started)
for _ in $(seq 1 100); do
	[ "$(psql -qAtX -c "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND wait_event_type = 'Extension' AND query LIKE '%qid = 3%'")" = 1 ] && break
	sleep 0.05
done
check "groups answered on their own: an embed() posted behind a kNN batch still on the device is answered first, within 1.5 s" \
	"SET codevec.device = cuda; SET statement_timeout = '1500ms'; SELECT embed('open a file')::real[] = fake('open a file')" t
check "groups answered on their own: a second embed() too (the first one's batch, all answered, gave its place up)" \
	"SET codevec.device = cuda; SET statement_timeout = '1500ms'; SELECT embed('close a file')::real[] = fake('close a file')" t
check "groups answered on their own: the kNN batch was still on the device meanwhile" \
	"SELECT '$(kill -0 "$held" 2>/dev/null && echo running)'" running
wait "$held"
check "groups answered on their own: the kNN batch's answer, later, equal to the sequential scan" \
	"SELECT '$(cat "$dir/held.out")' = (SELECT ids::text FROM mexp WHERE qid = 3)" t
# the fake encoder out again: the sections below expect none
fake_encoder_out
CODEVEC_FAKE_KNN_US=2000 restart codevec.gpu_devices=0 codevec.gpu_split_rows=0 codevec.gpu_replicate_rate=0
wait_state ready
# the copy on the device again (the first scan after a restart also loads it)
psql -qX -c "SET codevec.device = cuda" -c "SET enable_seqscan = off" \
	-c "SELECT count(*) FROM (SELECT id FROM mt ORDER BY emb <=> (SELECT emb FROM mq WHERE qid = 1) LIMIT 10) s" >/dev/null

# ---- the first GPU batch: a scan that took 100 rows (past the first 64
# candidates: two requests) makes the next scan of the index in the same
# session ask at once (one request) for 111 candidates, the most the fp16
# kernels answer with the buffers of 101 (cuda/knn.h; a power of two, 128,
# until 2026-12-07); the rows are the same
req=$(psql -qAtX -c "SET codevec.device = cuda" -c "SET enable_seqscan = off" \
	-c "EXPLAIN (ANALYZE, COSTS off, TIMING off) SELECT id FROM mt ORDER BY emb <=> (SELECT emb FROM mq WHERE qid = 4) LIMIT 100" \
	-c "EXPLAIN (ANALYZE, COSTS off, TIMING off) SELECT id FROM mt ORDER BY emb <=> (SELECT emb FROM mq WHERE qid = 5) LIMIT 100" \
	-c "EXPLAIN (ANALYZE, COSTS off, TIMING off) SELECT id FROM mt ORDER BY emb <=> (SELECT emb FROM mq WHERE qid = 6) LIMIT 10" \
	| sed -n 's/.*GPU requests \([0-9]*\), candidates \([0-9]*\),.*/\1\/\2/p' | tr '\n' ' ')
if [[ "$req" =~ ^2/[0-9]+\ 1/111\ 1/111\ $ ]]; then tap_ok "first batch sized by the last scan: GPU requests/candidates per scan $req"
else tap_not_ok "first batch sized by the last scan: GPU requests/candidates per scan '$req', want '2/... 1/111 1/111 '"; fi
same mt_cos '<=>' 100 "after the first batch grew: "

# ---- a scan's GPU request posted ahead (codevec_gpu_prefetch, what hybrid
# code.search does before its keyword list): the scan of the same query
# waits for that request instead of sending one; the answers stay exact
res=$(prefetched mt mq 100)
if grep -q "mismatches=0 posted=20" <<<"$res"; then tap_ok "prefetch: 20 prefetched index scans (k 100) equal sequential scans"
else tap_not_ok "prefetch: 20 prefetched scans: $(grep -E 'mismatches|ERROR|WARNING' <<<"$res" | head -2 | tr '\n' ' ')"; fi
# (a session's first scan measures the routing model, pings included: a
# request that drains one posted; code.search's plan is made before it runs)
line=$(psql -qAtX -c "SET codevec.device = cuda" -c "SET enable_seqscan = off" \
	-c "SELECT count(*) FROM (SELECT id FROM mt ORDER BY emb <=> (SELECT emb FROM mq WHERE qid = 8) LIMIT 10) s" \
	-c "SELECT codevec_gpu_prefetch('mt', (SELECT emb FROM mq WHERE qid = 9), 100);
	    EXPLAIN (ANALYZE, COSTS off, TIMING off) SELECT id FROM mt ORDER BY emb <=> (SELECT emb FROM mq WHERE qid = 9) LIMIT 100" \
	| grep 'gpuivf:')
if grep -q "GPU requests 1, .*prefetched 1" <<<"$line"; then tap_ok "prefetch: the scan took the posted request (one GPU request, prefetched 1)"
else tap_not_ok "prefetch: EXPLAIN says '$line'"; fi
line=$(psql -qAtX -c "SET codevec.device = cuda" -c "SET enable_seqscan = off" \
	-c "SELECT codevec_gpu_prefetch('mt_cos', (SELECT emb FROM mq WHERE qid = 10), 100);
	    EXPLAIN (ANALYZE, COSTS off, TIMING off) SELECT id FROM mt ORDER BY emb <=> (SELECT emb FROM mq WHERE qid = 11) LIMIT 10" \
	| grep 'gpuivf:')
if grep -q "GPU requests 1, " <<<"$line" && ! grep -q prefetched <<<"$line"; then
	tap_ok "prefetch of another query: the scan sends its own request (the posted one is drained)"
else tap_not_ok "prefetch of another query: EXPLAIN says '$line'"; fi
same mt_cos '<=>' 10 "after a drained prefetch: "
check "prefetch: false where the scan would not use the GPU (codevec.device = cpu)" \
	"SET codevec.device = cpu; SELECT codevec_gpu_prefetch('mt', (SELECT emb FROM mq WHERE qid = 1), 10)" f
check "prefetch: false with gpuivf.prefetch off" \
	"SET codevec.device = cuda; SET gpuivf.prefetch = off; SELECT codevec_gpu_prefetch('mt', (SELECT emb FROM mq WHERE qid = 1), 10)" f
check "prefetch: false for a table without a gpuivf index, and for NULLs" \
	"SET codevec.device = cuda; SELECT codevec_gpu_prefetch('mq', (SELECT emb FROM mq WHERE qid = 1), 10)::text || ' ' || coalesce(codevec_gpu_prefetch('mt', NULL, 10)::text, 'null')" "false false"
psql -qX -c "SET codevec.device = cpu" -c "CREATE INDEX mt_ivf ON mt USING gpuivf (emb codevec_cosine_ops) WITH (lists = 4)" >/dev/null
check "prefetch: false for an IVF index" \
	"SET codevec.device = cuda; SELECT codevec_gpu_prefetch('mt_ivf', (SELECT emb FROM mq WHERE qid = 1), 10)" f
psql -qX -c "DROP INDEX mt_ivf" >/dev/null
check "prefetch: false for a query of other dimensions, after this transaction's scan of the query, and while one is in flight" \
	"SET codevec.device = cuda; SET enable_seqscan = off;
	 BEGIN;
	 CREATE TEMP TABLE pf AS SELECT codevec_gpu_prefetch('mt_cos', '[1,2,3]'::codevec, 10) AS a, true AS b;
	 SELECT count(*) FROM (SELECT id FROM mt ORDER BY emb <=> (SELECT emb FROM mq WHERE qid = 2) LIMIT 5) s;
	 INSERT INTO pf SELECT codevec_gpu_prefetch('mt_cos', (SELECT emb FROM mq WHERE qid = 2), 10),
	   codevec_gpu_prefetch('mt_cos', (SELECT emb FROM mq WHERE qid = 3), 10) AND NOT codevec_gpu_prefetch('mt_cos', (SELECT emb FROM mq WHERE qid = 4), 10);
	 SELECT string_agg(a::text || '/' || b::text, ' ') FROM pf;
	 COMMIT" "false/true false/true"
res=$(psql -qAtX 2>&1 <<'SQL'
SET codevec.device = cuda;
SET enable_seqscan = off;
BEGIN;
SELECT codevec_gpu_prefetch('mt', (SELECT emb FROM mq WHERE qid = 12), 10);
SELECT 1 / 0;
ROLLBACK;
SELECT 'again=' || codevec_gpu_prefetch('mt', (SELECT emb FROM mq WHERE qid = 13), 10);
SELECT 'ids=' || array_agg(id)::text FROM (SELECT id FROM mt ORDER BY emb <=> (SELECT emb FROM mq WHERE qid = 13) LIMIT 10) s;
SET enable_seqscan = on; SET enable_indexscan = off;
SELECT 'seq=' || array_agg(id)::text FROM (SELECT id FROM mt ORDER BY emb <=> (SELECT emb FROM mq WHERE qid = 13), ctid LIMIT 10) s;
SQL
)
ids=$(sed -n 's/^ids=//p' <<<"$res"); seq=$(sed -n 's/^seq=//p' <<<"$res")
if grep -q "^again=true" <<<"$res" && [ -n "$ids" ] && [ "$ids" = "$seq" ]; then
	tap_ok "prefetch then an error: the transaction's request is abandoned, the session posts and scans again exactly"
else tap_not_ok "prefetch then an error: $(tr '\n' ' ' <<<"$res" | head -c 300)"; fi
# the service killed while a prefetched request waits: the scan gets the
# answer if it was given, else (the service restarted) the CPU's, exact
res=$(psql -qAtX 2>&1 <<'SQL'
SET codevec.device = auto;
SET gpuivf.gpu_min_rows = 1;
SET client_min_messages = error;
SET enable_seqscan = off;
BEGIN;
SELECT codevec_gpu_prefetch('mt', (SELECT emb FROM mq WHERE qid = 14), 10);
SELECT pg_terminate_backend(pid) FROM codevec_gpu_status();
SELECT pg_sleep(0.5);
SELECT 'ids=' || array_agg(id)::text FROM (SELECT id FROM mt ORDER BY emb <=> (SELECT emb FROM mq WHERE qid = 14) LIMIT 10) s;
COMMIT;
SET enable_seqscan = on; SET enable_indexscan = off;
SELECT 'seq=' || array_agg(id)::text FROM (SELECT id FROM mt ORDER BY emb <=> (SELECT emb FROM mq WHERE qid = 14), ctid LIMIT 10) s;
SQL
)
ids=$(sed -n 's/^ids=//p' <<<"$res"); seq=$(sed -n 's/^seq=//p' <<<"$res")
if [ -n "$ids" ] && [ "$ids" = "$seq" ]; then
	tap_ok "prefetch, then the service killed: the scan answers exactly (the answer given, or the CPU's)"
else tap_not_ok "prefetch, then the service killed: $(tr '\n' ' ' <<<"$res" | head -c 300)"; fi
wait_state ready
psql -qX -c "TRUNCATE mres" >/dev/null
for c in 1 2 3 4 5 6 7 8; do
	psql -qX -c "SET codevec.device = cuda" -c "SET enable_seqscan = off" -c "DO \$\$
		DECLARE r record; b int[];
		BEGIN
			FOR i IN 1..3 LOOP
				FOR r IN SELECT * FROM mq ORDER BY qid LOOP
					PERFORM codevec_gpu_prefetch('mt', r.emb, 10);
					SELECT array_agg(id) INTO b FROM (SELECT id FROM mt ORDER BY emb <=> r.emb LIMIT 10) s;
					INSERT INTO mres VALUES ($c, r.qid, b);
				END LOOP;
			END LOOP;
		END \$\$" >"$dir/pclient$c.out" 2>&1 &
done
wait
check "prefetch: 8 concurrent clients, 480 prefetched scans, all equal to sequential scans" \
	"SELECT count(*) || ' ' || count(*) FILTER (WHERE r.ids IS DISTINCT FROM e.ids) FROM mres r JOIN mexp e USING (qid)" "480 0"

# ---- code.search's hybrid mode posts its vector list's request before it
# computes the keyword list (code.gpu_prefetch): the same answers as with
# gpuivf.prefetch off and as on the CPU, one GPU request a search, taken by
# the scan. Python's email and json packages, stand-in vectors; the question
# is embedded on the CPU (the fake has no encoder: codevec.device = auto)
pylib=${CVL_TEST_PYLIB:-/usr/lib/python3.11}
if [ -x "$top/loaders/codevec-load" ] && [ -d "$pylib/email" ]; then
	mkdir -p "$dir/corpus" && cp -r "$pylib/email" "$pylib/json" "$dir/corpus/" && find "$dir/corpus" -name __pycache__ -prune -exec rm -rf {} +
	psql -qX -c "CREATE DATABASE cs" >/dev/null
	PGDATABASE=cs psql -qX -c "CREATE EXTENSION codevec" >/dev/null
	PGDATABASE=cs "$top/loaders/codevec-load" -q --no-embed --repo stdlib "$dir/corpus"
	PGDATABASE=cs psql -qX -c "UPDATE code.snippets SET emb = (SELECT array_agg(sin(id * 0.37 + i * 1.3)::real) FROM generate_series(1, 384) i)::codevec" \
		-c "CREATE INDEX snippets_emb_gpuivf ON code.snippets USING gpuivf (emb codevec_cosine_ops)" -c "VACUUM ANALYZE code.snippets" >/dev/null
	scanlines() {	# scanlines PLAN: its scan nodes and errors, on one line
		grep -E 'Scan on|Scan using|ERROR' <<<"$1" | sed 's/^ *//; s/  (.*//' | tr '\n' ';' | head -c 400
	}
	search() {	# search SETTINGS...: three hybrid searches in one session, id:score
		local sets="" kv
		for kv in "$@"; do sets="$sets SET $kv;"; done
		PGDATABASE=cs psql -qAtX -c "SET client_min_messages = error; SET gpuivf.gpu_min_rows = 1; $sets" \
			-c "SELECT string_agg(id || ':' || score, ',' ORDER BY score DESC, id) FROM code.search('parse email headers')" \
			-c "SELECT string_agg(id || ':' || score, ',' ORDER BY score DESC, id) FROM code.search('encode a string as json', k => 20)" \
			-c "SELECT string_agg(id || ':' || score, ',' ORDER BY score DESC, id) FROM code.search('split a mime message into parts', depth => 50)" 2>&1
	}
	on=$(search); off=$(search "gpuivf.prefetch = off"); cpu=$(search "codevec.device = cpu")
	if [ -n "$on" ] && [ "$(wc -l <<<"$on")" = 3 ] && [ "$on" = "$off" ] && [ "$on" = "$cpu" ] && ! grep -q ERROR <<<"$on"; then
		tap_ok "code.search hybrid with the prefetch: the same rows and scores as without it and as on the CPU (3 questions)"
	else tap_not_ok "code.search hybrid with the prefetch: on '$(head -c 200 <<<"$on")' off '$(head -c 200 <<<"$off")' cpu '$(head -c 200 <<<"$cpu")'"; fi
	# The EXPLAIN checks below are about what the gpuivf scan did, so they
	# pin the plan to it (enable_seqscan = off): on these 693 rows the
	# planner's choice between the index scan and a sequential scan and
	# sort turns on the GPU round trip measured once per server
	# (codevec_gpu_routing's ping_us), which a loaded machine raises (a CI
	# run once planned the hybrid list without the index). On a failure the
	# plan's scan lines are shown.
	plan=$(PGDATABASE=cs psql -qAtX -c "SET client_min_messages = error; SET gpuivf.gpu_min_rows = 1; SET enable_seqscan = off" \
		-c "SELECT count(*) FROM code.search('read a header')" \
		-c "EXPLAIN (ANALYZE, COSTS off, TIMING off) SELECT * FROM code.search('parse email headers')" 2>&1)
	line=$(grep 'gpuivf:' <<<"$plan")
	if grep -q "on GPU .*GPU requests 1, .*prefetched 1" <<<"$line"; then
		tap_ok "code.search hybrid: its gpuivf scan took the request posted before the keyword list (EXPLAIN ANALYZE: one GPU request, prefetched 1)"
	else tap_not_ok "code.search hybrid: EXPLAIN ANALYZE says '$line'; $(scanlines "$plan")"; fi
	plan=$(PGDATABASE=cs psql -qAtX -c "SET client_min_messages = error; SET gpuivf.gpu_min_rows = 1; SET enable_seqscan = off" \
		-c "SELECT count(*) FROM code.search('read a header')" \
		-c "EXPLAIN (ANALYZE, COSTS off, TIMING off) SELECT * FROM code.search('parse email headers', mode => 'vector')" 2>&1)
	line=$(grep 'gpuivf:' <<<"$plan")
	if grep -q "on GPU .*GPU requests 1, " <<<"$line" && ! grep -q prefetched <<<"$line"; then
		tap_ok "code.search vector mode posts nothing ahead (one GPU request, its own)"
	else tap_not_ok "code.search vector mode: EXPLAIN ANALYZE says '$line'; $(scanlines "$plan")"; fi

	# ---- BM25 on the GPU service (codevec_bm25_gpu_topk): the keyword
	# list's rows and scores are the CPU's bit for bit (scores printed with
	# every digit), its store follows writes (code.bm25_params.generation),
	# and a transaction's own uncommitted postings are ranked on the CPU
	kw() {	# kw SETTINGS...: keyword lists of three questions and a tied term, id:score
		local sets="" kv
		for kv in "$@"; do sets="$sets SET $kv;"; done
		PGDATABASE=cs psql -qAtX -c "SET client_min_messages = error; SET extra_float_digits = 3; $sets" \
			-c "SELECT string_agg(id || ':' || score, ',' ORDER BY score DESC, id) FROM code.search('parse email headers', mode => 'keyword')" \
			-c "SELECT string_agg(id || ':' || keyword_score || ':' || keyword_rank, ',' ORDER BY keyword_rank) FROM code.search('encode a string as json', k => 200, depth => 100) WHERE keyword_rank IS NOT NULL" \
			-c "SELECT string_agg(id || ':' || score, ',' ORDER BY score DESC, id) FROM code.bm25_search('message', 1000)" \
			-c "SELECT string_agg(id || ':' || score, ',' ORDER BY score DESC, id) FROM code.bm25_search('self', 7)" \
			-c "SELECT string_agg(id || ':' || score, ',' ORDER BY score DESC, id) FROM code.bm25_filtered('message', 30, path_like => '%/mime/%')" \
			-c "SELECT string_agg(id || ':' || keyword_score, ',' ORDER BY keyword_rank) FROM code.search('encode a string as json', k => 20, path_like => '%/encoder.py', mode => 'keyword')" 2>&1
	}
	ondev() {	# ondev SQL: how many BM25 top-k the GPU service answered for SQL
		PGDATABASE=cs psql -qAtX -c "SET client_min_messages = debug1" -c "$1" 2>&1 | grep -c "on the GPU service"
	}
	g=$(kw); c=$(kw "codevec.device = cpu")
	if [ -n "$g" ] && [ "$(wc -l <<<"$g")" = 6 ] && [ "$g" = "$c" ] && ! grep -q ERROR <<<"$g" &&
		[ "$(sed -n 5p <<<"$g" | tr ',' '\n' | grep -c .)" -ge 1 ] && [ "$(sed -n 6p <<<"$g" | tr ',' '\n' | grep -c .)" -ge 1 ]; then
		tap_ok "BM25 on the GPU service: keyword lists equal the CPU's, rows and score bits (6 lists, k up to 1000, ties, two with path filters)"
	else tap_not_ok "BM25 on the GPU service: gpu '$(head -c 300 <<<"$g")' cpu '$(head -c 300 <<<"$c")'"; fi
	check "BM25 on the GPU service: the keyword list was ranked there (DEBUG1 says so)" \
		"SELECT $(ondev "SELECT count(*) FROM code.search('parse email headers', mode => 'keyword')")" 1
	check "BM25 on the GPU service: a filtered keyword list (code.bm25_filtered) too" \
		"SELECT $(ondev "SELECT count(*) FROM code.bm25_filtered('message', 30, path_like => '%/mime/%')") >= 1" t
	res=$(PGDATABASE=cs psql -qAtX -c "SET gpuivf.gpu_min_rows = 1; SET enable_seqscan = off" -c "SELECT count(*) FROM code.search('read a header')" \
		-c "SET client_min_messages = debug1" \
		-c "EXPLAIN (ANALYZE, COSTS off, TIMING off) SELECT * FROM code.search('parse email headers')" 2>&1)
	if grep -q "on the GPU service" <<<"$res" && grep -q "gpuivf: .*on GPU .*GPU requests 1, .*prefetched 1" <<<"$res"; then
		tap_ok "code.search hybrid: the keyword list ranked on the GPU service beside the vector list's request posted ahead (still prefetched 1)"
	else tap_not_ok "code.search hybrid with BM25 on the GPU: $(grep -E 'GPU service|gpuivf:' <<<"$res" | tr '\n' ' ' | head -c 300); $(scanlines "$res")"; fi
	check "BM25 on the GPU service: not with codevec.device = cpu" \
		"SELECT $(ondev "SET codevec.device = cpu; SELECT count(*) FROM code.search('parse email headers', mode => 'keyword')")" 0
	gen0=$(PGDATABASE=cs psql -qAtX -c "SELECT generation FROM code.bm25_params")
	PGDATABASE=cs psql -qX -c "DELETE FROM code.snippets WHERE id IN (SELECT id FROM code.snippets WHERE tsv @@ 'messag'::tsquery ORDER BY id LIMIT 7)" >/dev/null
	gen1=$(PGDATABASE=cs psql -qAtX -c "SELECT generation FROM code.bm25_params")
	check "a write raises code.bm25_params.generation ($gen0 -> $gen1)" "SELECT ${gen1:-0} > ${gen0:-0}" t
	g=$(kw); c=$(kw "codevec.device = cpu")
	if [ -n "$g" ] && [ "$g" = "$c" ] && ! grep -q ERROR <<<"$g"; then
		tap_ok "BM25 on the GPU service after a DELETE: the store reloaded, the lists equal the CPU's"
	else tap_not_ok "BM25 after a DELETE: gpu '$(head -c 300 <<<"$g")' cpu '$(head -c 300 <<<"$c")'"; fi
	check "... and the GPU service ranked them (a new store at the new generation)" \
		"SELECT $(ondev "SELECT count(*) FROM code.bm25_search('message', 10)")" 1
	res=$(PGDATABASE=cs psql -qAtX 2>&1 <<'SQL'
SET client_min_messages = debug1;
BEGIN;
DELETE FROM code.snippets WHERE id IN (SELECT id FROM code.snippets WHERE tsv @@ 'messag'::tsquery ORDER BY id LIMIT 3);
SELECT 'gpu=' || string_agg(id || ':' || score, ',' ORDER BY score DESC, id) FROM code.bm25_search('message', 50);
SET codevec.device = cpu;
SELECT 'cpu=' || string_agg(id || ':' || score, ',' ORDER BY score DESC, id) FROM code.bm25_search('message', 50);
ROLLBACK;
SQL
)
	gl=$(sed -n 's/^gpu=//p' <<<"$res"); cl=$(sed -n 's/^cpu=//p' <<<"$res")
	if [ -n "$gl" ] && [ "$gl" = "$cl" ] && ! grep -q "on the GPU service" <<<"$res"; then
		tap_ok "BM25 in a transaction that wrote postings: ranked on the CPU (its own generation), the same list"
	else tap_not_ok "BM25 in a writing transaction: $(tr '\n' ' ' <<<"$res" | head -c 300)"; fi
	g=$(kw); c=$(kw "codevec.device = cpu")
	if [ -n "$g" ] && [ "$g" = "$c" ]; then tap_ok "BM25 on the GPU service after the ROLLBACK: the lists equal the CPU's"
	else tap_not_ok "BM25 after a ROLLBACK: gpu '$(head -c 200 <<<"$g")' cpu '$(head -c 200 <<<"$c")'"; fi
	# concurrent keyword lists share the service's batches (one call for
	# several TOPK requests): 8 clients x 3 rounds x 12 questions, each the CPU's
	PGDATABASE=cs psql -qX -c "CREATE TABLE kq (qid int, q text); CREATE TABLE kres (c int, qid int, r text)" \
		-c "INSERT INTO kq SELECT i, (ARRAY['parse email headers', 'encode a string as json', 'message', 'decode base64',
			'split a mime message into parts', 'read a header', 'self', 'quoted printable', 'charset', 'policy', 'json decoder error', 'address list'])[i]
			FROM generate_series(1, 12) i" >/dev/null
	for c in 1 2 3 4 5 6 7 8; do
		PGDATABASE=cs psql -qX -c "SET client_min_messages = error" -c "DO \$\$
			DECLARE r record; x text;
			BEGIN
				FOR i IN 1..3 LOOP
					FOR r IN SELECT * FROM kq ORDER BY (qid * $c) % 13 LOOP
						SELECT string_agg(id || ':' || score, ',' ORDER BY score DESC, id) INTO x FROM code.bm25_search(r.q, 50);
						INSERT INTO kres VALUES ($c, r.qid, x);
					END LOOP;
				END LOOP;
			END \$\$" >"$dir/kclient$c.out" 2>&1 &
	done
	wait
	PGDATABASE=cs psql -qX -c "SET codevec.device = cpu" \
		-c "CREATE TABLE kexp AS SELECT qid, (SELECT string_agg(id || ':' || score, ',' ORDER BY score DESC, id) FROM code.bm25_search(q, 50)) r FROM kq" >/dev/null
	res=$(PGDATABASE=cs psql -qAtX -c "SELECT count(*) || ' ' || count(*) FILTER (WHERE k.r IS DISTINCT FROM e.r) FROM kres k JOIN kexp e USING (qid)")
	if [ "$res" = "288 0" ]; then tap_ok "BM25 on the GPU service: 8 concurrent clients, 288 keyword lists, all equal to the CPU's"
	else tap_not_ok "BM25 with 8 concurrent clients: '$res' $(cat "$dir"/kclient*.out | grep -m2 ERROR)"; fi
	psql -qX -c "DROP DATABASE cs" >/dev/null
else
	tap_ok "# SKIP code.search with the prefetch: no codevec-load build or no $pylib/email"
fi

# ---- one device listed; the default (every visible device); the alias; a bad ordinal
restart codevec.gpu_devices=0 codevec.gpu_split_rows=1000
wait_state ready
check "one device listed: one row" "SELECT count(*) || ' ' || min(ordinal) FROM codevec_gpu_devices()" "1 0"
same mt_l2 '<->' 100 "one device: "
check "one device: the copy whole (no split, no replica with one device)" \
	"SELECT copies || ' ' || ranges || ' ' || replicas FROM codevec_gpu_devices()" "1 0 0"
restart "codevec.gpu_devices=" codevec.gpu_split_rows=0
wait_state ready
check "empty list: every visible device" "SELECT string_agg(ordinal::text, ',' ORDER BY device) FROM codevec_gpu_devices()" "0,1"
restart "codevec.gpu_devices=" codevec.gpu_device=1
wait_state ready
check "empty list and codevec.gpu_device = 1: that device alone (the alias)" \
	"SELECT string_agg(ordinal::text, ',') || ' / ' || (SELECT device FROM codevec_gpu_status()) FROM codevec_gpu_devices()" "1 / Fake GPU 1"
same mt_ip '<#>' 10 "the alias's device: "
restart codevec.gpu_devices=1,5
wait_state "no device"
check "a listed device that is not there: no device, and the message names it" \
	"SELECT state || ' / ' || message FROM codevec_gpu_status()" \
	"no device / codevec.gpu_devices lists device 5 but only 2 CUDA device(s) are visible"
grep -E "PANIC|terminated by signal|server process .* was terminated" "$dir/server.log" | head -5
check "no backend or service crashed" "SELECT $(grep -cE 'PANIC|terminated by signal' "$dir/server.log")" 0

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
