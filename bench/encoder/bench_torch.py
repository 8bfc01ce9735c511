#!/usr/bin/env python3
"""bench_torch.py - the PyTorch anchor for bench/encoder: sentence-transformers
with model.half() on the same inputs as bench_encoder.c, plus the GPU's
measured ceilings (a large fp16 GEMM, the encoder's own GEMM shapes, a
device-to-device copy).

Usage: python3 bench_torch.py MODEL_DIR [--quick]

Inputs are the same as bench_encoder.c's (the LCG in seq_ids / mixed_lens).
Single query: one 12-token sequence, synchronous, H2D of the ids and D2H
of the embedding included. Bulk: padded batches (every sequence has the
same length there, so no padding is wasted); mixed lengths: sorted by
length and padded per batch, as SentenceTransformer.encode does. The best
batch size is reported. Prints a table and "RESULT,..." CSV lines.
"""
import sys
import time

import torch
import torch.nn.functional as F

VOCAB = 30522
QUICK = "--quick" in sys.argv


def seq_ids(s, L):
    x = (1 + s * 7919 + L * 104729) & 0xFFFFFFFF
    out = []
    for _ in range(L):
        x = (x * 1664525 + 1013904223) & 0xFFFFFFFF
        out.append(1000 + (x >> 8) % (VOCAB - 1000))
    out[0], out[-1] = 101, 102
    return out


def mixed_lens(n):
    x, out = 42, []
    for _ in range(n):
        x = (x * 1664525 + 1013904223) & 0xFFFFFFFF
        out.append(8 + (x >> 8) % 249)
    return out


def ceilings():
    dev = "cuda"
    a = torch.randn(8192, 8192, device=dev, dtype=torch.float16)
    b = torch.randn(8192, 8192, device=dev, dtype=torch.float16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    st, en = torch.cuda.Event(True), torch.cuda.Event(True)
    st.record()
    for _ in range(20):
        a @ b
    en.record()
    en.synchronize()
    tf = 2 * 8192 ** 3 * 20 / (st.elapsed_time(en) / 1e3) / 1e12
    print(f"GEMM fp16 8192^3 (torch.matmul, random): {tf:.0f} TFLOP/s")
    print(f"RESULT,torch,gpu,gemm_peak,8192,8192,8192,tflops={tf:.1f}")
    # the encoder's GEMM shapes at T = 65536 tokens (256 x 256)
    T = 65536
    for (n, k) in [(1152, 384), (384, 384), (1536, 384), (384, 1536)]:
        x = torch.randn(T, k, device=dev, dtype=torch.float16)
        w = torch.randn(n, k, device=dev, dtype=torch.float16)
        bias = torch.randn(n, device=dev, dtype=torch.float16)
        for _ in range(3):
            F.linear(x, w, bias)
        torch.cuda.synchronize()
        st.record()
        for _ in range(20):
            F.linear(x, w, bias)
        en.record()
        en.synchronize()
        ms = st.elapsed_time(en) / 20
        print(f"  linear T={T} k={k} n={n}: {ms*1e3:.1f} us, {2*T*n*k/ms/1e9:.0f} TFLOP/s")
        print(f"RESULT,torch,gpu,gemm_shape,{T},{n},{k},us={ms*1e3:.1f},tflops={2*T*n*k/ms/1e9:.1f}")
    del a, b
    src = torch.empty(1 << 28, device=dev, dtype=torch.float32)  # 1 GiB
    dst = torch.empty_like(src)
    dst.copy_(src)
    torch.cuda.synchronize()
    st.record()
    for _ in range(10):
        dst.copy_(src)
    en.record()
    en.synchronize()
    bw = 2 * src.numel() * 4 * 10 / (st.elapsed_time(en) / 1e3) / 1e12
    print(f"device-to-device copy: {bw:.2f} TB/s (read + write)")
    print(f"RESULT,torch,gpu,copy_bw,1GiB,,,tbps={bw:.2f}")
    del src, dst
    torch.cuda.empty_cache()


def make_minilm(path):
    from sentence_transformers import SentenceTransformer
    st = SentenceTransformer(path, device="cuda")
    st.half().eval()

    def fwd(ids, mask):
        f = {"input_ids": ids, "attention_mask": mask,
             "token_type_ids": torch.zeros_like(ids)}
        return st(f)["sentence_embedding"]
    return fwd


def make_rand12():
    from transformers import BertConfig, BertModel
    cfg = BertConfig(vocab_size=VOCAB, hidden_size=384, num_hidden_layers=12,
                     num_attention_heads=12, intermediate_size=1536,
                     max_position_embeddings=512)
    torch.manual_seed(7)
    m = BertModel(cfg, add_pooling_layer=False).half().cuda().eval()

    def fwd(ids, mask):
        h = m(input_ids=ids, attention_mask=mask).last_hidden_state
        mk = mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * mk).sum(1) / mk.sum(1).clamp(min=1e-9)
        return F.normalize(pooled.float(), p=2, dim=1)
    return fwd


def run_batch(fwd, rows):
    """Embed a list of id lists, padded to the longest; copies included."""
    L = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), L, dtype=torch.long, pin_memory=True)
    mask = torch.zeros(len(rows), L, dtype=torch.long, pin_memory=True)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        mask[i, :len(r)] = 1
    return ids, mask


def embed(fwd, ids, mask):
    out = fwd(ids.to("cuda", non_blocking=True), mask.to("cuda", non_blocking=True))
    return out.float().cpu()


def bench_model(name, fwd):
    runs = 50 if QUICK else 300
    with torch.inference_mode():
        q_ids, q_mask = run_batch(fwd, [seq_ids(0, 12)])
        for _ in range(30):
            embed(fwd, q_ids, q_mask)
        ts = []
        for _ in range(runs):
            t0 = time.perf_counter()
            embed(fwd, q_ids, q_mask)
            ts.append((time.perf_counter() - t0) * 1e6)
        ts.sort()
        p50, p99, mean = ts[runs // 2], ts[int(runs * 0.99)], sum(ts) / runs
        print(f"{name:8s} single 12-token query: p50 {p50:7.1f} us  p99 {p99:7.1f} us  mean {mean:7.1f} us")
        print(f"RESULT,torch,{name},single,eager,12,1,p50_us={p50:.1f},p99_us={p99:.1f},mean_us={mean:.1f}")

        min_s = 0.05 if QUICK else 0.3
        for L in (128, 256):
            best = 0
            for B in (64, 128, 256, 512):
                ids, mask = run_batch(fwd, [seq_ids(s, L) for s in range(B)])
                embed(fwd, ids, mask)
                reps, t0 = 0, time.perf_counter()
                while True:
                    embed(fwd, ids, mask)
                    reps += 1
                    el = time.perf_counter() - t0
                    if el >= min_s and reps >= 3:
                        break
                sps = B * reps / el
                best = max(best, sps)
                print(f"{name:8s} bulk L={L} batch={B:3d}: {sps:9.0f} seq/s")
                print(f"RESULT,torch,{name},bulk,fp16,{L},{B},seq_per_s={sps:.0f}")
            print(f"RESULT,torch,{name},bulk_best,fp16,{L},best,seq_per_s={best:.0f}")

        n = 512 if QUICK else 4096
        lens = mixed_lens(n)
        order = sorted(range(n), key=lambda i: -lens[i])
        best = 0
        for B in (64, 128, 256):
            batches = [run_batch(fwd, [seq_ids(i, lens[i]) for i in order[j:j + B]])
                       for j in range(0, n, B)]
            for ids, mask in batches:   # every padded shape once: steady state
                embed(fwd, ids, mask)
            reps, t0 = 0, time.perf_counter()
            while True:
                for ids, mask in batches:
                    embed(fwd, ids, mask)
                reps += 1
                el = time.perf_counter() - t0
                if el >= min_s and reps >= 2:
                    break
            sps = n * reps / el
            best = max(best, sps)
            print(f"{name:8s} mixed 8..256 x {n}, sorted, batch={B}: {sps:9.0f} seq/s")
            print(f"RESULT,torch,{name},mixed,fp16,{sum(lens)/n:.0f},{B},seq_per_s={sps:.0f}")
        print(f"RESULT,torch,{name},mixed_best,fp16,{sum(lens)/n:.0f},best,seq_per_s={best:.0f}")


def main():
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
    ceilings()
    bench_model("minilm6", make_minilm(sys.argv[1]))
    torch.cuda.empty_cache()
    bench_model("rand12", make_rand12())


if __name__ == "__main__":
    main()
