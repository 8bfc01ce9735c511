#!/usr/bin/env python3
"""Generate the tiny random BERT fixtures and their reference outputs.

    python3 gen_tiny_model.py OUT_DIR        (OUT_DIR = test/embed/fixtures)

Writes, all from a fixed seed, nothing downloaded:
  tiny-bert/          sentence-transformers folder: BertModel (hidden 32,
                      2 layers, 4 heads, FFN 64, 64 positions), F32 weights,
                      our own 400-entry vocabulary, mean pooling + Normalize
  tiny-bert-f16-cls/  the same weights rounded to F16, tensor names with the
                      "bert." prefix, CLS pooling, no Normalize
  tiny-bert-ref.json  strings, HF token ids, and where each reference lies in
  tiny-bert-ref.bin   little-endian float32: for tiny-bert every layer's
                      output (hidden_states[0..2], unpadded rows, sequences
                      back to back), then the pooled outputs of tiny-bert and
                      of tiny-bert-f16-cls (sentence-transformers .encode)
Weights are N(0, 0.2) (LayerNorm gains 1 + N(0, 0.1)) so that every layer
changes its input a lot and a wrong step cannot hide.
"""
import json
import os
import re
import shutil
import sys
import tempfile

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from sentence_transformers import SentenceTransformer, models
from transformers import BertConfig, BertModel, BertTokenizerFast

SEED = 4
out_dir = sys.argv[1]
torch.manual_seed(SEED)

STRINGS = [
    "hello world",
    "def parse_config(path): return json.load(open(path))",
    "Parse the config file and fall back to defaults.",
    "",
    "   ",
    "int main(int argc, char **argv) { return 0; }",
    "café naïve résumé",
    "中文 mixed with english",
    "a",
    "the quick brown fox jumps over the lazy dog " * 3,
    "x" * 120,
    "SELECT * FROM code.snippets ORDER BY emb <=> embed('query') LIMIT 10;",
]

# our own vocabulary: specials, characters, continuations, frequent words
words = re.findall(r"[a-z]+", " ".join(STRINGS).lower() + " " + open(__file__).read().lower())
freq = {}
for w in words:
    if 2 <= len(w) <= 8:
        freq[w] = freq.get(w, 0) + 1
top = [w for w, _ in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))]
chars = [chr(c) for c in range(33, 127) if not chr(c).isupper()]
vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789_"]
vocab += ["中", "文", "##s", "##ing", "##ed"]
for w in top:
    if len(vocab) >= 400:
        break
    if w not in vocab:
        vocab.append(w)

tmp = tempfile.mkdtemp()
hf_dir = os.path.join(tmp, "hf")
os.makedirs(hf_dir)
with open(os.path.join(hf_dir, "vocab.txt"), "w") as f:
    f.write("\n".join(vocab) + "\n")
tok = BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True)
assert tok("hello world")["input_ids"][1] != 1, "tokenizer did not take the vocabulary"

cfg = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                 num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=64, type_vocab_size=2,
                 hidden_act="gelu", layer_norm_eps=1e-12)
model = BertModel(cfg, add_pooling_layer=False)
with torch.no_grad():
    for name, p in model.named_parameters():
        if "LayerNorm.weight" in name:
            p.copy_(1 + 0.1 * torch.randn_like(p))
        else:
            p.copy_(0.2 * torch.randn_like(p))
model.eval()
model.save_pretrained(hf_dir, safe_serialization=True)
tok.save_pretrained(hf_dir)


def st_folder(src, dst, pooling, normalize):
    tr = models.Transformer(src, max_seq_length=64)
    mods = [tr, models.Pooling(32, pooling)]
    if normalize:
        mods.append(models.Normalize())
    st = SentenceTransformer(modules=mods, device="cpu")
    st.save(dst)
    # keep only what the encoder reads (and what the references need)
    keep = {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json",
            "modules.json", "sentence_bert_config.json", "1_Pooling"}
    for n in os.listdir(dst):
        if n not in keep:
            p = os.path.join(dst, n)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    # transformers 5 saves tokenizer.json only; the encoder reads vocab.txt
    shutil.copy(os.path.join(hf_dir, "vocab.txt"), os.path.join(dst, "vocab.txt"))
    os.chmod(os.path.join(dst, "model.safetensors"), 0o644)
    return st


os.makedirs(out_dir, exist_ok=True)
d32 = os.path.join(out_dir, "tiny-bert")
shutil.rmtree(d32, ignore_errors=True)
st32 = st_folder(hf_dir, d32, "mean", True)

# F16 copy with "bert." prefixed names and CLS pooling
hf16 = os.path.join(tmp, "hf16")
shutil.copytree(hf_dir, hf16)
sd = load_file(os.path.join(hf_dir, "model.safetensors"))
save_file({k: v.half() for k, v in sd.items()}, os.path.join(hf16, "model.safetensors"),
          metadata={"format": "pt"})
d16 = os.path.join(out_dir, "tiny-bert-f16-cls")
shutil.rmtree(d16, ignore_errors=True)
st16 = st_folder(hf16, d16, "cls", False)
sd16 = load_file(os.path.join(d16, "model.safetensors"))
save_file({"bert." + k: v.half() for k, v in sd16.items()}, os.path.join(d16, "model.safetensors"),
          metadata={"format": "pt"})
os.chmod(os.path.join(d16, "model.safetensors"), 0o644)

# references: hidden states from BertModel on a padded batch with the mask
enc = tok(STRINGS, padding=True, truncation=True, max_length=64, return_tensors="pt")
with torch.no_grad():
    hs = model(**enc, output_hidden_states=True).hidden_states
ids = [[int(i) for i, m in zip(row, mask) if m] for row, mask in zip(enc["input_ids"], enc["attention_mask"])]
blobs, index = [], {"strings": STRINGS, "ids": ids, "hidden": 32, "layers": 2, "hidden_states": [], "pooled": {}}
off = 0
for l, h in enumerate(hs):
    rows = [h[b, :len(ids[b])].numpy() for b in range(len(STRINGS))]
    a = np.concatenate(rows).astype("<f4").reshape(-1)
    index["hidden_states"].append({"layer": l, "offset": off, "count": int(a.size)})
    blobs.append(a)
    off += a.size
for name, st in (("tiny-bert", st32), ("tiny-bert-f16-cls", SentenceTransformer(d16, device="cpu"))):
    e = st.encode(STRINGS, batch_size=64, convert_to_numpy=True).astype("<f4")
    index["pooled"][name] = {"offset": off, "count": int(e.size)}
    blobs.append(e.reshape(-1))
    off += e.size
np.concatenate(blobs).tofile(os.path.join(out_dir, "tiny-bert-ref.bin"))
with open(os.path.join(out_dir, "tiny-bert-ref.json"), "w") as f:
    json.dump(index, f, indent=1)
shutil.rmtree(tmp)
print("wrote", d32, d16, file=sys.stderr)
