"""PyTorch anchor for bench_knn: q @ X.T + torch.topk on the same GPU.

Cosine as the product of unit vectors (normalisation not timed), k=10,
median of CUDA-event timings; several copies of X rotate when X is smaller
than 4x L2, as in bench_knn.  Prints a table and writes CSV (--csv).
"""
import argparse
import torch

p = argparse.ArgumentParser()
p.add_argument("--sizes", default="100000,1000000,10000000")
p.add_argument("--nq", default="1,16,64")
p.add_argument("--dim", type=int, default=384)
p.add_argument("--k", type=int, default=10)
p.add_argument("--reps", type=int, default=50)
p.add_argument("--csv", default=None)
a = p.parse_args()

dev = torch.device("cuda")
props = torch.cuda.get_device_properties(dev)
l2 = getattr(props, "L2_cache_size", 50 << 20)
print(f"torch {torch.__version__} on {props.name}, L2 {l2 >> 20} MB, "
      f"allow_tf32(matmul)={torch.backends.cuda.matmul.allow_tf32}")
rows = []
print(f"{'n':<9} {'dtype':<5} {'nq':>4} {'copies':>6} {'median_ms':>10} {'min_ms':>9}")
for n in [int(s) for s in a.sizes.split(",")]:
    for dt, name in ((torch.float16, "fp16"), (torch.float32, "fp32")):
        bytes_ = n * a.dim * (2 if dt == torch.float16 else 4)
        copies = min(4, -(-4 * l2 // bytes_))
        g = torch.Generator(device=dev).manual_seed(n)
        X = []
        for _ in range(copies):
            x = torch.randn(n, a.dim, device=dev, generator=g, dtype=torch.float32)
            x = torch.nn.functional.normalize(x, dim=1).to(dt)
            X.append(x)
        for nq in [int(s) for s in a.nq.split(",")]:
            q = torch.nn.functional.normalize(
                torch.randn(nq, a.dim, device=dev, generator=g), dim=1).to(dt)
            ts = []
            for r in range(a.reps + 5):
                e0 = torch.cuda.Event(enable_timing=True)
                e1 = torch.cuda.Event(enable_timing=True)
                e0.record()
                s = q @ X[r % copies].T
                v, i = torch.topk(s, a.k, dim=1, largest=True)
                e1.record()
                e1.synchronize()
                if r >= 5:
                    ts.append(e0.elapsed_time(e1))
            ts.sort()
            med, mn = ts[len(ts) // 2], ts[0]
            print(f"{n:<9} {name:<5} {nq:>4} {copies:>6} {med:>10.4f} {mn:>9.4f}", flush=True)
            rows.append((n, a.dim, name, nq, a.k, copies, med, mn))
            del s, v, i
        del X
        torch.cuda.empty_cache()
if a.csv:
    with open(a.csv, "w") as f:
        f.write("n,dim,prec,nq,k,copies,median_ms,min_ms\n")
        for r in rows:
            f.write(",".join(f"{x:.5f}" if isinstance(x, float) else str(x) for x in r) + "\n")
