#!/usr/bin/env bash
# test/gpuprewarm/run.sh — the GPU service's prewarm list on a machine
# without a GPU (src/gpuprewarm.c): codevec_gpu_prewarm_list() reads
# $PGDATA/pg_codevec_prewarm as the service does at its start, so the file's
# format and every kind of garbage are checked here: entries in order, bad
# lines skipped with a WARNING, a wrong header or a binary file read as
# empty, oids out of range refused, a very long line skipped whole, at most
# 64 entries, no file no rows; the server never crashes (the service keeps
# its pid). The loading itself needs a GPU: test/gpu/prewarm.sh. Runs its own
# cluster with shared_preload_libraries = codevec. Ends with
# "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
source "$top/test/lib.sh"
suite_cluster gpuprewarm 5611
trap 'cluster_stop; rm -rf "$dir"' EXIT


cluster_start shared_preload_libraries=codevec
psql -qX -c "CREATE EXTENSION codevec" >/dev/null
f=$dir/data/pg_codevec_prewarm
owner=$(stat -c %U "$dir/data")
# put FILE: the list the next call reads (readable by the server's user)
put() { cat >"$f"; chmod 644 "$f"; chown "$owner" "$f" 2>/dev/null || true; }
pid0=$(psql -qAtX -c "SELECT pid FROM codevec_gpu_status()")
LIST="SELECT string_agg(ordinal || ':' || database || '/' || index, ' ' ORDER BY ordinal) FROM codevec_gpu_prewarm_list()"

rm -f "$f"
check "no file: no rows" "SELECT count(*) FROM codevec_gpu_prewarm_list()" 0
check "codevec.gpu_prewarm is on by default" "SHOW codevec.gpu_prewarm" on

printf 'codevec prewarm 1\n5 16384\n5 16390\n1 20000\n' | put
check "entries in order" "$LIST" "1:5/16384 2:5/16390 3:1/20000"

printf 'codevec prewarm 1\n5 16384\n5 16390' | put
check "the last line without its newline still counts" "$LIST" "1:5/16384 2:5/16390"

printf 'codevec prewarm 1\n5 16384\nfoo bar\n5\n-5 16390\n5  7\n 5 8\n5 9 \n0 12\n5 0\n5 4294967296\n5 99999999999999999999\n5 4294967295\n7 12x\n\n7 13\n' | put
check "malformed lines skipped, the others kept" "$LIST" "1:5/16384 2:5/4294967295 3:7/13"
check "a malformed line is a WARNING" "SELECT count(*) FROM codevec_gpu_prewarm_list()" \
	"WARNING:  codevec gpu prewarm: skipped 12 malformed line(s) of \"$f\""

printf 'codevec prewarm 2\n5 16384\n' | put
check "another header: empty, with a WARNING" "SELECT count(*) FROM codevec_gpu_prewarm_list()" \
	"WARNING:  codevec gpu prewarm: ignoring \"$f\": it does not start with \"codevec prewarm 1\""

head -c 100000 /dev/urandom | put
check "random bytes: read as empty" "SELECT count(*) FROM codevec_gpu_prewarm_list()" 0

: | put
check "an empty file: no rows" "SELECT count(*) FROM codevec_gpu_prewarm_list()" 0

{ echo 'codevec prewarm 1'; echo '5 100'; head -c 5000 /dev/zero | tr '\0' '7'; echo ' 9'; echo '5 101'; } | put
check "a line longer than the buffer is skipped whole" "$LIST" "1:5/100 2:5/101"

{ echo 'codevec prewarm 1'; for i in $(seq 1 100); do echo "5 $((16000 + i))"; done; } | put
check "at most 64 entries, the first ones" \
	"SELECT count(*) || ' ' || min(index::int8) || ' ' || max(index::int8) FROM codevec_gpu_prewarm_list()" "64 16001 16064"

printf 'codevec prewarm 1\n5 16384\n' | put
chmod 000 "$f"
# as root the server user may still read it; either way no error
check "an unreadable file: no error" "SELECT count(*) <= 1 FROM codevec_gpu_prewarm_list()" t
chmod 644 "$f"

psql -qX -c "CREATE ROLE prewarm_nobody LOGIN" >/dev/null 2>&1
check "not callable by PUBLIC" "SET ROLE prewarm_nobody; SELECT count(*) FROM codevec_gpu_prewarm_list()" \
	"ERROR:  permission denied for function codevec_gpu_prewarm_list"
psql -qX -c "DROP ROLE prewarm_nobody" >/dev/null 2>&1

# the service itself: with no device it never loads or rewrites the list
check "the service kept running (same pid)" "SELECT pid FROM codevec_gpu_status()" "$pid0"
bash "$top/test/cluster.sh" stop "$dir" >/dev/null
eval "$(bash "$top/test/cluster.sh" start "$dir" "$port" shared_preload_libraries=codevec)" || exit 1
check "without a device the list is left as it was" "$LIST" "1:5/16384"
check "the stages are listed, in order, zero before any request" \
	"SELECT string_agg(stage || '=' || timings, ',' ORDER BY ord) FROM codevec_gpu_stages() WITH ORDINALITY AS s(stage, on_device, timings, requests, total_us, mean_us, per_request_us, max_us, ord) WHERE stage IN ('queue', 'knn kernels', 'batch')" \
	"queue=0,knn kernels=0,batch=0"
psql -qAtX -c "SELECT codevec_gpu_ping(50)" >/dev/null
check "codevec_gpu_stages times the service's batches (ping)" \
	"SELECT (SELECT timings >= 1 AND requests >= 40 AND total_us > 0 AND max_us > 0 AND NOT on_device FROM codevec_gpu_stages() WHERE stage = 'batch') AND (SELECT requests >= 40 FROM codevec_gpu_stages() WHERE stage = 'queue')" t
check "20 stages, device ones marked" \
	"SELECT count(*) || ' ' || count(*) FILTER (WHERE on_device) FROM codevec_gpu_stages()" "21 4"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
