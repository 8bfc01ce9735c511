#!/usr/bin/env python3
"""Plot bench/gpuivf/compare.sh's runs: QPS at 16 clients with recall@10,
codevec exact (GPU) vs pgvector HNSW, from compare-*-h200.log.
    python3 bench/gpuivf/plot.py  ->  bench/gpuivf/compare-h200.png
"""
import os
import re

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
runs = [("real 870k", "compare-real-870k-h200.log"), ("random 1M", "compare-random-1M-h200.log"),
        ("random 100k", "compare-random-100k-h200.log")]
fig, axes = plt.subplots(1, len(runs), figsize=(13, 4))
for ax, (title, name) in zip(axes, runs):
    text = open(os.path.join(here, name)).read()
    recall = {m.group(1): float(m.group(2)) for m in re.finditer(r"hnsw,ef_search=(\d+),recall10=([0-9.]+)", text)}
    bars = []
    for m in re.finditer(r"RESULT,(\w+),clients=16,qps=(\d+)", text):
        eng, qps = m.group(1), int(m.group(2))
        if eng == "codevec_flat_gpu":
            bars.append(("codevec exact\n(GPU)", qps, 1.0))
        elif eng.startswith("pgvector_hnsw_ef"):
            ef = eng[len("pgvector_hnsw_ef"):]
            bars.append((f"HNSW\nef {ef}", qps, recall.get(ef, float("nan"))))
    ax.bar([b[0] for b in bars], [b[1] for b in bars], color=["tab:orange"] + ["tab:blue"] * (len(bars) - 1))
    for i, b in enumerate(bars):
        ax.text(i, b[1], f"recall {b[2]:.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_title(title)
    ax.set_ylabel("queries / s, 16 clients, k = 10")
fig.suptitle("H200 + 16 cores, same run: codevec gpuivf (exact) vs pgvector 0.8.6 HNSW")
fig.tight_layout()
out = os.path.join(here, "compare-h200.png")
fig.savefig(out, dpi=110)
print(out)
