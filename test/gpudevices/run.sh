#!/usr/bin/env bash
# test/gpudevices/run.sh — several GPUs in one server, the parts a machine
# without a GPU can check (issue 19): codevec.gpu_devices' parsing and its
# errors (22023 with a detail naming the entry at fault, as ALTER SYSTEM
# validates it; 55P02 for SET: it is read at server start), a bad list in
# postgresql.conf (a WARNING at start, the default kept, the service still
# running), the defaults and contexts of codevec.gpu_devices,
# codevec.gpu_split_rows and codevec.gpu_replicate_rate, codevec_gpu_devices()
# (its columns and COMMENT; no rows without a device) and the service's
# no-device behaviour unchanged with a device list set. The devices
# themselves, the split and the replicas need a GPU: test/gpu/multigpu.sh.
# Runs its own cluster with shared_preload_libraries = codevec. Ends with
# "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
source "$top/test/lib.sh"
suite_cluster gpudevices 5641
CHECK_PSQL="-v VERBOSITY=verbose"
trap 'cluster_stop; rm -rf "$dir"' EXIT

# bad VALUE DETAIL: ALTER SYSTEM refuses the list with 22023 and DETAIL
bad() {
	check "'$1' is refused (22023)" "ALTER SYSTEM SET codevec.gpu_devices = '$1'" \
		"ERROR:  22023: invalid value for parameter \"codevec.gpu_devices\": \"$1\""
	check "'$1': the detail says why" "ALTER SYSTEM SET codevec.gpu_devices = '$1'" "DETAIL:  $2"
}
# good VALUE: ALTER SYSTEM takes the list (then it is reset)
good() {
	check "'$1' is a valid list" \
		"SELECT '$(psql -qAtX -c "ALTER SYSTEM SET codevec.gpu_devices = '$1'" 2>&1 && echo ok)'" ok
	psql -qAtX -c "ALTER SYSTEM RESET codevec.gpu_devices" >/dev/null
}

cluster_start shared_preload_libraries=codevec
psql -qX -c "CREATE EXTENSION codevec" >/dev/null
wait_state "no device"

# ---- the settings: defaults and contexts
check "codevec.gpu_devices: empty by default (every visible device), read at start" \
	"SELECT quote_literal(setting) || ' ' || context || ' ' || vartype FROM pg_settings WHERE name = 'codevec.gpu_devices'" \
	"'' postmaster string"
check "codevec.gpu_split_rows: 0 by default (split only what does not fit), reloadable" \
	"SELECT setting || ' ' || context || ' ' || min_val || ' ' || max_val FROM pg_settings WHERE name = 'codevec.gpu_split_rows'" \
	"0 sighup 0 2147483647"
check "codevec.gpu_replicate_rate: 500 requests a second by default, reloadable" \
	"SELECT setting || ' ' || context || ' ' || min_val FROM pg_settings WHERE name = 'codevec.gpu_replicate_rate'" \
	"500 sighup 0"
check "codevec.gpu_device is still there (the alias), 0 by default" \
	"SELECT setting || ' ' || context FROM pg_settings WHERE name = 'codevec.gpu_device'" "0 sighup"
check "SET codevec.gpu_devices is refused: it is read at server start (55P02)" \
	"SET codevec.gpu_devices = '0'" \
	"ERROR:  55P02: parameter \"codevec.gpu_devices\" cannot be changed without restarting the server"
check "codevec.gpu_split_rows below 0 is refused (22023)" \
	"ALTER SYSTEM SET codevec.gpu_split_rows = -1" \
	"ERROR:  22023: -1 is outside the valid range for parameter \"codevec.gpu_split_rows\" (0 .. 2147483647)"

# ---- the list's syntax
good "0"
good "0,0"
good " 0 , 1 "
good "63"
good "7,6,5,4,3,2,1,0"
good ""
bad "a" "Entry 1 is not a device number: the value must be device numbers separated by commas, such as \"0,1\"."
bad "0,x" "Entry 2 is not a device number: the value must be device numbers separated by commas, such as \"0,1\"."
bad "0," "Entry 2 is not a device number: the value must be device numbers separated by commas, such as \"0,1\"."
bad ",0" "Entry 1 is not a device number: the value must be device numbers separated by commas, such as \"0,1\"."
bad "0,,1" "Entry 2 is not a device number: the value must be device numbers separated by commas, such as \"0,1\"."
bad "0 1" "Entry 1 is not a device number: the value must be device numbers separated by commas, such as \"0,1\"."
bad "-1" "Entry 1 is not a device number: the value must be device numbers separated by commas, such as \"0,1\"."
bad "1.5" "Entry 1 is not a device number: the value must be device numbers separated by commas, such as \"0,1\"."
bad "64" "Entry 1 is out of range: device numbers run from 0 to 63."
bad "0,99999999999999999999" "Entry 2 is out of range: device numbers run from 0 to 63."
bad "0,0,0,0,0,0,0,0,0" "At most 8 devices may be listed."
check "a refused list leaves postgresql.auto.conf without it" \
	"SELECT count(*) FROM pg_file_settings WHERE name = 'codevec.gpu_devices'" 0

# ---- codevec_gpu_devices(): shape, comment, no rows without a device
check "codevec_gpu_devices(): columns and types" \
	"SELECT string_agg(n || ':' || t, ',') FROM (SELECT unnest(proargnames) n, unnest(proallargtypes::regtype[]::text[]) t
	 FROM pg_proc WHERE proname = 'codevec_gpu_devices') s" \
	"device:integer,ordinal:integer,name:text,memory_used_mb:bigint,memory_free_mb:bigint,memory_total_mb:bigint,held_mb:bigint,copies:integer,ranges:integer,replicas:integer,models:integer,requests:bigint"
check "codevec_gpu_devices() has a COMMENT that names codevec.gpu_devices" \
	"SELECT obj_description('codevec_gpu_devices()'::regprocedure, 'pg_proc') LIKE '%one row per entry of codevec.gpu_devices%'" t
check "no device: codevec_gpu_devices() has no rows" "SELECT count(*) FROM codevec_gpu_devices()" 0
check "no device: the status row is unchanged" \
	"SELECT state || ' / ' || (message LIKE 'no CUDA device%' OR message LIKE '%without CUDA%') || ' / ' || (device IS NULL) FROM codevec_gpu_status()" \
	"no device / true / true"

# ---- a list in postgresql.conf: no GPU, the same no-device service
bash "$top/test/cluster.sh" stop "$dir" >/dev/null
echo "codevec.gpu_devices = '0,0'" >>"$dir/data/postgresql.conf"
echo "codevec.gpu_split_rows = 1000" >>"$dir/data/postgresql.conf"
eval "$(bash "$top/test/cluster.sh" start "$dir" "$port")" || exit 1
wait_state "no device"
check "gpu_devices = '0,0' is read at start" "SHOW codevec.gpu_devices" "0,0"
check "with a list and no GPU the service runs and says why there is no device" \
	"SELECT state || ' / ' || (pid IS NOT NULL) || ' / ' || (message LIKE 'no CUDA device%' OR message LIKE '%without CUDA%') FROM codevec_gpu_status()" \
	"no device / true / true"
check "ping still answers through the service" "SELECT codevec_gpu_ping(20) > 0" t
check "still no rows from codevec_gpu_devices()" "SELECT count(*) FROM codevec_gpu_devices()" 0
psql -qX -c "CREATE TABLE t (id int, emb codevec(4))" \
	-c "INSERT INTO t SELECT i, ARRAY[i, i % 7, i % 3, 1]::real[]::codevec FROM generate_series(1, 3000) i" \
	-c "CREATE INDEX t_l2 ON t USING gpuivf (emb codevec_l2_ops)" >/dev/null 2>&1
check "auto with a list and no GPU: the index scan equals a sequential scan (the CPU)" \
	"SET codevec.device = auto; SET client_min_messages = error; SET enable_seqscan = off;
	 SELECT (SELECT array_agg(id) FROM (SELECT id FROM t ORDER BY emb <-> '[5,5,1,1]', id LIMIT 20) a) =
	        (SELECT array_agg(id) FROM (SELECT id FROM t ORDER BY emb <-> '[5,5,1,1]' LIMIT 20) b)" t

# ---- a bad list in postgresql.conf: a WARNING at start, the default kept
bash "$top/test/cluster.sh" stop "$dir" >/dev/null
sed -i "/^codevec.gpu_devices/d" "$dir/data/postgresql.conf"
echo "codevec.gpu_devices = '0,banana'" >>"$dir/data/postgresql.conf"
eval "$(bash "$top/test/cluster.sh" start "$dir" "$port")" || exit 1
wait_state "no device"
check "a bad list in postgresql.conf: the server starts with the default" \
	"SELECT quote_literal(current_setting('codevec.gpu_devices'))" "''"
check "a bad list in postgresql.conf: the log says so" \
	"SELECT $(grep -c 'invalid value for parameter "codevec.gpu_devices": "0,banana"' "$dir/server.log") > 0" t
check "a bad list in postgresql.conf: the service still runs" \
	"SELECT state || ' / ' || (pid IS NOT NULL) FROM codevec_gpu_status()" "no device / true"

# ---- not preloaded: the setting exists once the library loads, nothing runs
bash "$top/test/cluster.sh" stop "$dir" >/dev/null
sed -i "/^shared_preload_libraries/d; /^codevec.gpu_devices/d" "$dir/data/postgresql.conf"
eval "$(bash "$top/test/cluster.sh" start "$dir" "$port")" || exit 1
check "not preloaded: codevec.gpu_devices is defined when the library loads" \
	"LOAD 'codevec'; SELECT quote_literal(current_setting('codevec.gpu_devices'))" "''"
check "not preloaded: codevec_gpu_devices() has no rows" "SELECT count(*) FROM codevec_gpu_devices()" 0

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
