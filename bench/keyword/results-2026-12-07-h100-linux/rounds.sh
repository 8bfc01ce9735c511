#!/usr/bin/env bash
# call 5 (warm after d4): hybrid at 16 clients, 6 rounds of 10 s, with the device's and CPUs' use
source test/gpu/setup.sh >/tmp/setup5.log 2>&1; echo "setup rc=$?"
nvidia-smi --query-gpu=name --format=csv,noheader
export PGDATABASE=linux
w=$(mktemp -d); cd $w
printf '\\set i random(1, 100)\nSELECT s.id FROM public.bench_questions b, code.search(b.q, k => 10, mode => %s) s WHERE b.i = :i;\n' "'hybrid'" > hybrid.sql
for r in 1 2 3 4 5 6; do
  if [ $r = 3 ]; then (nvidia-smi dmon -s u -c 8 > $OUT/dmon.txt 2>&1 &); (top -b -d 2 -n 4 > $OUT/top.txt 2>&1 &); (vmstat 2 5 > $OUT/vmstat.txt 2>&1 &); fi
  pgbench -n -M prepared -c 16 -j 16 -T 10 -f hybrid.sql > out.$r 2>&1
  echo "round $r: $(grep -E '^tps' out.$r) $(grep 'latency average' out.$r)"
done
for c in 24 32; do pgbench -n -M prepared -c $c -j $c -T 10 -f hybrid.sql > outc.$c 2>&1; echo "clients $c: $(grep -E '^tps' outc.$c)"; done
cat $OUT/vmstat.txt
date -u
