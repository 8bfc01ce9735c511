-- EXPLAIN says where each gpuivf index scan runs and why (gpuivfexplain.c).
-- pg_regress runs without shared_preload_libraries: no GPU service, so
-- every scan is on the CPU; test/gpuservice and test/gpu/explain.sh cover
-- the service's states and the GPU.
CREATE TABLE ge (id int, emb codevec(3));
INSERT INTO ge SELECT i, ARRAY[i % 17, i % 5, 1]::real[] FROM generate_series(1, 500) i;
CREATE INDEX ge_l2 ON ge USING gpuivf (emb codevec_l2_ops);
CREATE INDEX ge_ivf ON ge USING gpuivf (emb codevec_cosine_ops) WITH (lists = 4);
ANALYZE ge;
SET enable_seqscan = off;

-- plan only: the decision the scan would make
EXPLAIN (COSTS OFF) SELECT id FROM ge ORDER BY emb <-> '[1,2,3]' LIMIT 3;
SET codevec.device = cpu;
EXPLAIN (COSTS OFF) SELECT id FROM ge ORDER BY emb <-> '[1,2,3]' LIMIT 3;
RESET codevec.device;
EXPLAIN (COSTS OFF) SELECT id FROM ge ORDER BY emb <=> '[1,2,3]' LIMIT 3;

-- codevec.device = cuda: the plan says the scan fails, the scan fails
SET codevec.device = cuda;
EXPLAIN (COSTS OFF) SELECT id FROM ge ORDER BY emb <-> '[1,2,3]' LIMIT 3;
SELECT id FROM ge ORDER BY emb <-> '[1,2,3]' LIMIT 3;
RESET codevec.device;

-- ANALYZE: what the scans did (3 rescans in a subplan, a filter)
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, BUFFERS OFF)
SELECT id FROM ge WHERE id % 2 = 0 ORDER BY emb <-> '[1,2,3]' LIMIT 3;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, BUFFERS OFF)
SELECT a.id, (SELECT b.id FROM ge b ORDER BY b.emb <-> a.emb LIMIT 1) FROM ge a WHERE a.id <= 3;
-- a scan that never ran
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, BUFFERS OFF)
SELECT id FROM ge WHERE false OR id < 0 AND id IN (SELECT id FROM ge ORDER BY emb <-> '[1,2,3]' LIMIT 1);

-- two scans, through Append
EXPLAIN (COSTS OFF)
(SELECT id FROM ge ORDER BY emb <-> '[1,2,3]' LIMIT 2) UNION ALL (SELECT id FROM ge ORDER BY emb <=> '[1,2,3]' LIMIT 2);

-- structured formats: a "gpuivf" list of groups
EXPLAIN (FORMAT JSON, COSTS OFF) SELECT id FROM ge ORDER BY emb <-> '[1,2,3]' LIMIT 3;
EXPLAIN (ANALYZE, FORMAT YAML, COSTS OFF, TIMING OFF, SUMMARY OFF, BUFFERS OFF)
SELECT id FROM ge ORDER BY emb <-> '[1,2,3]' LIMIT 3;

-- no gpuivf scan: nothing added
EXPLAIN (COSTS OFF) SELECT count(*) FROM ge;

-- the routing model and decision for one index; not a gpuivf index: 42809
SELECT metric, dims, reltuples, calibrated_on, cpu_ns_per_row > 0 AS cpu_measured,
       ping_us, break_even_rows, min_rows, device, detail
FROM codevec_gpu_routing('ge_l2');
SET gpuivf.gpu_min_rows = 10000;
SELECT min_rows FROM codevec_gpu_routing('ge_l2');
SET gpuivf.gpu_min_rows = -1;
SELECT min_rows FROM codevec_gpu_routing('ge_l2');
RESET gpuivf.gpu_min_rows;
SELECT * FROM codevec_gpu_routing('ge');
DROP TABLE ge;
