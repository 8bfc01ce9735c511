#!/usr/bin/env python3
"""The PyTorch anchor of bench/gpuembed: sentence-transformers with
model.half() on the same GPU, end to end as a Python user runs it
(tokenization by the Hugging Face fast tokenizer included, as embed()
includes codevec's tokenizer), on the same inputs as the SQL side.

    python3 torch_anchor.py MODEL_DIR WORKDIR

Writes into WORKDIR:
  bulk.tsv        4,096 chunks of real code (the Python standard library of
                  the host, split at line ends into pieces of >= 300 tokens),
                  as COPY text rows "id<TAB>text": the SQL side embeds the
                  same texts;
  rand12-384/     a random-weight BERT with gte-small / bge-small's shapes
                  (12 layers, 384 hidden, 12 heads, FFN 1536), F16
                  safetensors, all-MiniLM-L6-v2's tokenizer and pooling: the
                  12-layer model (no 12-layer checkpoint is reachable
                  offline; timing does not depend on the weights' values);
and prints RESULT lines:
  query:  one 12-token query, model.encode([q]) (tokenize, H2D, forward,
          pool, normalise, D2H), 50 warm-ups then 300 timed: p50/p99 us;
  bulk:   model.encode(4096 texts, batch_size=B) with max_seq_length L
          (every text is cut to exactly L tokens), B in 64..512, the best
          seq/s, for L = 128 and 256.
"""
import glob
import json
import os
import shutil
import sys
import time

import numpy as np
import torch

MODEL, WORK = sys.argv[1], sys.argv[2]
QUERY = "compute the sha256 of a file in chunks"
os.makedirs(WORK, exist_ok=True)
torch.manual_seed(0)


def texts_for_bulk(tok):
    files = sorted(glob.glob("/usr/lib/python3*/**/*.py", recursive=True))
    out = []
    for f in files:
        try:
            src = open(f, encoding="utf-8").read()
        except (UnicodeDecodeError, OSError):
            continue
        piece = []
        n = 0
        for line in src.splitlines(keepends=True):
            piece.append(line)
            n += len(line)
            if n >= 1600:
                text = "".join(piece)
                piece, n = [], 0
                if len(tok(text, add_special_tokens=True)["input_ids"]) >= 300:
                    out.append(text)
                    if len(out) == 4096:
                        return out
    return out


def esc(t):
    return t.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def timed(fn, warm, n):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t0) * 1e6)
    ts.sort()
    return ts[len(ts) // 2], ts[int(len(ts) * 0.99)]


def bench(name, encode, set_len, texts):
    p50, p99 = timed(lambda: encode([QUERY], 1), 50, 300)
    print(f"RESULT,torch,{name},query,p50_us={p50:.1f},p99_us={p99:.1f}", flush=True)
    for L in (128, 256):
        set_len(L)
        best = (0, 0)
        for B in (64, 128, 256, 512):
            encode(texts[:B], B)                # warm-up of this shape
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            encode(texts, B)
            torch.cuda.synchronize()
            rate = len(texts) / (time.perf_counter() - t0)
            print(f"  {name} L={L} batch={B}: {rate:,.0f} seq/s", flush=True)
            best = max(best, (rate, B))
        print(f"RESULT,torch,{name},bulk,L={L},seq_per_s={best[0]:.0f},batch={best[1]}", flush=True)


from sentence_transformers import SentenceTransformer  # noqa: E402
from transformers import AutoTokenizer, BertConfig, BertModel  # noqa: E402

st = SentenceTransformer(MODEL, device="cuda").half().eval()
tok = st.tokenizer
texts = texts_for_bulk(tok)
print(f"bulk texts: {len(texts)}, query tokens: {len(tok(QUERY)['input_ids'])}", flush=True)
with open(os.path.join(WORK, "bulk.tsv"), "w") as f:
    for i, t in enumerate(texts):
        f.write(f"{i + 1}\t{esc(t)}\n")
print(f"torch {torch.__version__}, GPU {torch.cuda.get_device_name(0)}", flush=True)


def st_encode(xs, b):
    with torch.inference_mode():
        return st.encode(xs, batch_size=b, convert_to_numpy=True, normalize_embeddings=False)


def st_len(L):
    st.max_seq_length = L


bench("MiniLM-L6", st_encode, st_len, texts)

# the 12-layer model: random init, saved for the SQL side, run like ST does
cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=384, num_hidden_layers=12,
                 num_attention_heads=12, intermediate_size=1536, max_position_embeddings=512)
m12 = BertModel(cfg, add_pooling_layer=False).half().cuda().eval()
out = os.path.join(WORK, "rand12-384")
shutil.rmtree(out, ignore_errors=True)
m12.save_pretrained(out, safe_serialization=True)
for f in ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json",
          "modules.json", "sentence_bert_config.json"):
    if os.path.exists(os.path.join(MODEL, f)):
        shutil.copy(os.path.join(MODEL, f), out)
for d in ("1_Pooling", "2_Normalize"):
    if os.path.isdir(os.path.join(MODEL, d)):
        shutil.copytree(os.path.join(MODEL, d), os.path.join(out, d))
L12 = [128]


def m12_encode(xs, b):
    res = []
    with torch.inference_mode():
        for i in range(0, len(xs), b):
            enc = tok(xs[i:i + b], padding=True, truncation=True, max_length=L12[0],
                      return_tensors="pt").to("cuda")
            h = m12(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(h.dtype)
            e = (h * mask).sum(1) / mask.sum(1)
            res.append(torch.nn.functional.normalize(e, dim=-1).float().cpu().numpy())
    return np.concatenate(res)


def m12_len(L):
    L12[0] = L


bench("rand12-384", m12_encode, m12_len, texts)
# the GPU's fp16 GEMM rate in the same run, for the TFLOP/s shares
a = torch.randn(8192, 8192, dtype=torch.half, device="cuda")
for _ in range(3):
    a @ a
torch.cuda.synchronize()
t0 = time.perf_counter()
for _ in range(20):
    a @ a
torch.cuda.synchronize()
print(f"RESULT,torch,gemm,fp16_8192,tflops={2 * 8192 ** 3 * 20 / (time.perf_counter() - t0) / 1e12:.0f}")
