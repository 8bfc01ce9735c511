#!/usr/bin/env bash
# bench/keyword/inserver.sh -- the keyword path's parts timed inside the
# server, without pgbench, the protocol or the plan cache: for each of
# public.bench_questions' questions (bench/keyword/gpu.sh or latency.py make
# them), the best of 3 runs of code.bm25_query(q), of the pruned top-k alone
# (codevec_bm25_blocks_topk on the query's terms) at k 10 and 100, and of
# code.bm25_filtered(q, 10); p50 and mean in ms.  Used to compare hosts
# (the 2-core machine and the H200 host) on the same database contents.
#
#   PGDATABASE=lx bash bench/keyword/inserver.sh     # any libpq settings
#   GPU_HOST=1 PGDATABASE=ingest_cvl bash bench/keyword/inserver.sh   # on the CUDA
#                          # host, test/gpu/setup.sh's server (started or reused)
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
if [ "${GPU_HOST:-0}" = 1 ]; then
	db=${PGDATABASE:-}
	set --
	source "$top/test/gpu/setup.sh" >/dev/null || exit 1
	export PGDATABASE=$db
fi
psql -qAtX -v ON_ERROR_STOP=1 -c "SELECT count(*) FROM code.bm25_postings" >/dev/null
psql -qAtX -v ON_ERROR_STOP=1 -c "
DO \$\$
DECLARE r record; t0 timestamptz; x bigint; sh int; best double precision; part text;
BEGIN
  SELECT block_shift INTO sh FROM code.bm25_params;
  CREATE TEMP TABLE qs AS SELECT b.i, b.q, (code.bm25_query(b.q)).* FROM public.bench_questions b;
  CREATE TEMP TABLE tm (part text, i int, ms double precision);
  FOREACH part IN ARRAY ARRAY['bm25_query', 'topk10', 'topk100', 'bm25_filtered10'] LOOP
    FOR r IN SELECT * FROM qs WHERE terms IS NOT NULL ORDER BY i LOOP
      best := 1e9;
      FOR j IN 1..3 LOOP
        t0 := clock_timestamp();
        IF part = 'bm25_query' THEN
          PERFORM code.bm25_query(r.q);
        ELSIF part = 'topk10' THEN
          SELECT count(*) INTO x FROM codevec_bm25_blocks_topk(r.terms, r.idf, 10, 'code.bm25_postings_idx'::regclass, sh);
        ELSIF part = 'topk100' THEN
          SELECT count(*) INTO x FROM codevec_bm25_blocks_topk(r.terms, r.idf, 100, 'code.bm25_postings_idx'::regclass, sh);
        ELSE
          SELECT count(*) INTO x FROM code.bm25_filtered(r.q, 10);
        END IF;
        best := least(best, extract(epoch FROM clock_timestamp() - t0) * 1000);
      END LOOP;
      INSERT INTO tm VALUES (part, r.i, best);
    END LOOP;
  END LOOP;
END \$\$;" -c "SELECT 'part,questions,p50_ms,mean_ms'" -c "
SELECT part || ',' || count(*) || ',' || round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 3) || ',' || round(avg(ms)::numeric, 3)
FROM tm GROUP BY part ORDER BY min(CASE part WHEN 'bm25_query' THEN 1 WHEN 'topk10' THEN 2 WHEN 'topk100' THEN 3 ELSE 4 END)"
# the client round trip alone, for scale: pgbench -M prepared of SELECT 1
echo 'SELECT 1;' > /tmp/inserver-one.sql
pgbench -n -M prepared -c 1 -T 5 -f /tmp/inserver-one.sql 2>&1 | sed -n 's/^latency average = \(.*\) ms/select1_roundtrip,1,\1,/p'
