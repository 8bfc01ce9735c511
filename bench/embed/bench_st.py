#!/usr/bin/env python3
"""Time sentence-transformers on PyTorch (CPU) with the same model, inputs
and thread count as bench_encoder.c.

    python3 bench_st.py MODEL_DIR THREADS INPUTS_JSON [QUERY_ITERS]
Prints one JSON object.
"""
import json
import sys
import time


def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])


model_dir, threads, inputs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
iters = int(sys.argv[4]) if len(sys.argv) > 4 else 200
import torch  # noqa: E402
torch.set_num_threads(threads)
from sentence_transformers import SentenceTransformer  # noqa: E402

inp = json.load(open(inputs))
rss0 = rss_kb()
t0 = time.perf_counter()
model = SentenceTransformer(model_dir, device="cpu")
model.eval()
load_s = time.perf_counter() - t0
rss1 = rss_kb()
q = inp["query_list"]
lat = []
with torch.inference_mode():
    for _ in range(20):
        model.encode(q, batch_size=1, convert_to_numpy=True)
    for _ in range(iters):
        t = time.perf_counter()
        model.encode(q, batch_size=1, convert_to_numpy=True)
        lat.append(time.perf_counter() - t)
    lat.sort()
    res = {"impl": "sentence-transformers", "threads": torch.get_num_threads(),
           "torch": torch.__version__, "query_p50_ms": 1000 * lat[iters // 2],
           "query_p99_ms": 1000 * lat[int(iters * 0.99)]}
    for size in (128, 256):
        model.max_seq_length = size
        texts = inp[f"snippets_{size}"]
        model.encode(texts, batch_size=32, convert_to_numpy=True)
        t = time.perf_counter()
        model.encode(texts, batch_size=32, convert_to_numpy=True)
        res[f"seq_per_s_{size}"] = len(texts) / (time.perf_counter() - t)
res["load_s"] = load_s
res["model_rss_mb"] = (rss1 - rss0) / 1024
res["peak_rss_mb"] = rss_kb() / 1024
print(json.dumps(res))
