#!/usr/bin/env python3
"""Print the results of bench/embed/run.sh as a markdown table."""
import glob
import json
import os
import sys

out = sys.argv[1]
print(open(os.path.join(out, "machine.txt")).read())
rows = []
for p in sorted(glob.glob(os.path.join(out, "*.json"))):
    r = json.load(open(p))
    name = os.path.basename(p)[:-5]
    rows.append((name, r))
print("| run | threads | BLAS kernels | 12-token query p50 ms | p99 ms | seq/s @128 | seq/s @256 | model memory MB | process RSS MB |")
print("|---|---|---|---|---|---|---|---|---|")
for name, r in rows:
    mem = r.get("model_rss_mb")
    if mem is None and "rss_after_load_mb" in r:
        mem = r["rss_after_load_mb"] - r["rss_before_mb"]
    blas = r.get("blas", "MKL/oneDNN (torch)" if name.startswith("st") else "server default")
    print(f"| {name} | {r.get('threads', '2 (server default)')} | {blas} | {r['query_p50_ms']:.2f} | {r['query_p99_ms']:.2f} | "
          f"{r['seq_per_s_128']:.1f} | {r['seq_per_s_256']:.1f} | {mem:.0f} | {r['peak_rss_mb']:.0f} |")
by = dict(rows)
print()
for t, cname in [(t, n) for t in (1, 2) for n in (f"codevec-c-t{t}", f"codevec-c-autodetect-t{t}")]:
    c, s = by.get(cname), by.get(f"st-t{t}")
    if c and s:
        print(f"{cname} vs st-t{t}: latency p50 speedup {s['query_p50_ms'] / c['query_p50_ms']:.2f}x, "
              f"p99 {s['query_p99_ms'] / c['query_p99_ms']:.2f}x, "
              f"throughput @128 {c['seq_per_s_128'] / s['seq_per_s_128']:.2f}x, "
              f"@256 {c['seq_per_s_256'] / s['seq_per_s_256']:.2f}x (codevec / sentence-transformers)")
