#!/usr/bin/env python3
"""ONNX Runtime rows of the int8 benchmark: the same model, texts, batches
and timings as bench_int8.c, through ONNX Runtime (CPU) in fp32 and with its
int8 dynamic quantization.

    python bench_ort.py export MODEL_DIR OUT_DIR
        PyTorch (transformers' BertModel on the folder's safetensors) ->
        OUT_DIR/model-fp32.onnx: input_ids, attention_mask, token_type_ids
        -> mean-pooled, L2-normalized embedding (what sentence-transformers
        computes for the model); then onnxruntime.quantization.quantize_dynamic
        (per_channel=True, weights QInt8, activations u8 per tensor, as ORT
        does) -> OUT_DIR/model-int8.onnx.
    python bench_ort.py run MODEL_DIR ONNX THREADS SNIPPETS_JSONL N [EMB_OUT [ITERS]]
        p50/p99 of one query ("compute the sha256 of a file in chunks"),
        then the first N snippets in batches of 32 (file order, each batch
        padded to its longest text; 256-token budget), tokenization included
        (Hugging Face tokenizers, the model's tokenizer.json).  Prints JSON.
        SORT=1: the snippets sorted by length first (least padding: ONNX
        Runtime's best case; the row is named ...-sorted).
"""
import json
import os
import sys
import time

import numpy as np

QUERY = "compute the sha256 of a file in chunks"
BATCH = 32  # as bench_int8.c (embed(text[]) hands the encoder 32 at a time)
MAX_TOKENS = 256


def export(model_dir, out_dir):
    import torch
    from transformers import AutoModel
    from onnxruntime.quantization import QuantType, quantize_dynamic

    os.makedirs(out_dir, exist_ok=True)
    # float32 whatever the folder stores (the shipped model is F16): ONNX
    # Runtime's fp32 row must run fp32, and its quantizer needs fp32 scales
    bert = AutoModel.from_pretrained(model_dir, attn_implementation="eager",
                                     dtype=torch.float32).float().eval()

    class Pooled(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask, token_type_ids):
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            p = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(p, p=2, dim=1)

    ids = torch.ones(2, 16, dtype=torch.long)
    fp32 = os.path.join(out_dir, "model-fp32.onnx")
    torch.onnx.export(Pooled(bert), (ids, torch.ones_like(ids), torch.zeros_like(ids)), fp32,
                      input_names=["input_ids", "attention_mask", "token_type_ids"],
                      output_names=["embedding"], opset_version=17, dynamo=False,
                      dynamic_axes={n: {0: "batch", 1: "seq"} for n in
                                    ("input_ids", "attention_mask", "token_type_ids")} |
                      {"embedding": {0: "batch"}})
    quantize_dynamic(fp32, os.path.join(out_dir, "model-int8.onnx"),
                     per_channel=True, weight_type=QuantType.QInt8)
    print(json.dumps({"torch": torch.__version__, "fp32": fp32}))


def run(model_dir, onnx_path, threads, snippets, n, emb_out=None, iters=200):
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.enable_truncation(MAX_TOKENS)
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])

    def embed(texts):
        enc = tok.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        return sess.run(None, {"input_ids": ids, "attention_mask": mask,
                               "token_type_ids": np.zeros_like(ids)})[0], int(mask.sum())

    for _ in range(20):
        embed([QUERY])
    lat = []
    for _ in range(iters):
        t0 = time.perf_counter()
        embed([QUERY])
        lat.append(time.perf_counter() - t0)
    lat.sort()

    texts = [json.loads(line) for _, line in zip(range(n), open(snippets))]
    sort = os.environ.get("SORT") == "1"
    if sort:
        texts.sort(key=lambda t: len(tok.encode(t).ids))
    embed(texts[:BATCH])
    out, ntok = [], 0
    t0, c0 = time.perf_counter(), time.process_time()
    for i in range(0, len(texts), BATCH):
        e, k = embed(texts[i:i + BATCH])
        out.append(e)
        ntok += k
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    if emb_out and not sort:
        np.concatenate(out).astype(np.float32).tofile(emb_out)
    print(json.dumps({
        "impl": ("ort-int8" if "int8" in os.path.basename(onnx_path) else "ort-fp32") +
                ("-sorted" if sort else ""),
        "threads": threads, "onnxruntime": ort.__version__,
        "query_p50_ms": 1000 * lat[len(lat) // 2],
        "query_p99_ms": 1000 * lat[int(len(lat) * 0.99)],
        "snippets": len(texts), "mean_tokens": ntok / len(texts), "bulk_s": secs,
        "snippets_per_s": len(texts) / secs, "tokens_per_s": ntok / secs,
        "bulk_cpu_s": cpu, "snippets_per_cpu_s": len(texts) / cpu,
        "loadavg_end": os.getloadavg()[0]}))


if __name__ == "__main__":
    if sys.argv[1] == "export":
        export(sys.argv[2], sys.argv[3])
    else:
        a = sys.argv
        run(a[2], a[3], int(a[4]), a[5], int(a[6]), a[7] if len(a) > 7 and a[7] else None,
            int(a[8]) if len(a) > 8 else 200)
