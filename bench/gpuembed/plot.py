#!/usr/bin/env python3
"""Plot bench/gpuembed's results: codevec embed() through SQL vs
sentence-transformers (same GPU, same inputs), from results/*-h200.log.
    python3 bench/gpuembed/plot.py   ->  bench/gpuembed/results/embed-h200.png
"""
import os
import re

import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

here = os.path.dirname(os.path.abspath(__file__))
res = {}
for name in ("torch-h200.log", "sql-h200.log"):
    for line in open(os.path.join(here, "results", name)):
        if line.startswith("RESULT,"):
            f = line.strip().split(",")
            kv = dict(x.split("=", 1) for x in f[4:] if "=" in x)
            res.setdefault((f[1], f[2], f[3]), []).append(kv)

models = [("MiniLM-L6", "all-MiniLM-L6-v2"), ("rand12-384", "rand12-384")]
fig, ax = plt.subplots(1, 2, figsize=(11, 4))
for i, (tm, cm) in enumerate(models):
    labels, torch_v, cv_v = [], [], []
    for L in ("128", "256"):
        t = next(kv for kv in res[("torch", tm, "bulk")] if kv["L"] == L)
        c = next(kv for kv in res[("codevec", cm, "bulk")] if kv["L"] == L and kv["sessions"] == "1")
        labels.append(f"bulk {L} tok")
        torch_v.append(float(t["seq_per_s"]))
        cv_v.append(float(c["seq_per_s"]))
    x = range(len(labels))
    ax[i].bar([j - 0.2 for j in x], torch_v, 0.4, label="sentence-transformers fp16")
    ax[i].bar([j + 0.2 for j in x], cv_v, 0.4, label="codevec embed(text[]) via SQL")
    for j in x:
        ax[i].text(j + 0.2, cv_v[j], f"{cv_v[j] / torch_v[j]:.1f}x", ha="center", va="bottom")
    q_t = float(res[("torch", tm, "query")][0]["p50_us"])
    q_c = float(next(kv for kv in res[("codevec", cm, "query")] if kv["device"] == "cuda")["p50_us"])
    ax[i].set_xticks(list(x))
    ax[i].set_xticklabels(labels)
    ax[i].set_ylabel("sequences / s (one session)")
    ax[i].set_title(f"{cm}: query p50 {q_c:.0f} us vs {q_t:.0f} us")
    ax[i].legend(fontsize=8)
fig.suptitle("H200, same run: tokenization included on both sides")
fig.tight_layout()
out = os.path.join(here, "results", "embed-h200.png")
fig.savefig(out, dpi=110)
print(out)
