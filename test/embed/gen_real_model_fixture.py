#!/usr/bin/env python3
"""Generate the real-model references: sentence-transformers embeddings of
real code strings with the default model (all-MiniLM-L6-v2, as `make model`
installs it), on the CPU, in float32.

    python3 gen_real_model_fixture.py MODEL_DIR OUT_DIR

Writes OUT_DIR/real-model-strings.jsonl ({"text": ...} a line) and
OUT_DIR/real-model-ref.bin (little-endian float32, one row of `dims` floats
per string, in order).  Strings: function and class sources (signature,
docstring, body) from the CPython standard library on the machine that ran
this (/usr/lib/python3.11), comment blocks and declarations from
/usr/include, and natural-language queries written here; chosen with a
fixed seed; a few run past the 256-token budget to cover truncation.
"""
import ast
import json
import os
import random
import sys

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

model_dir, out_dir = sys.argv[1], sys.argv[2]
rng = random.Random(7)
torch.set_num_threads(2)


def py_snippets(n):
    files = []
    for d, _, fs in os.walk("/usr/lib/python3.11"):
        if "test" in d:
            continue
        files += [os.path.join(d, f) for f in fs if f.endswith(".py")]
    files.sort()
    rng.shuffle(files)
    out = []
    for p in files:
        if len(out) >= n:
            break
        try:
            src = open(p, encoding="utf-8").read()
            tree = ast.parse(src)
        except Exception:
            continue
        nodes = [x for x in ast.walk(tree) if isinstance(x, (ast.FunctionDef, ast.ClassDef))]
        if not nodes:
            continue
        node = rng.choice(nodes)
        seg = ast.get_source_segment(src, node) or ""
        kind = rng.random()
        if kind < 0.3:
            doc = ast.get_docstring(node) or ""
            s = (node.name + ": " + doc)[:600]
        elif kind < 0.8:
            s = seg[:1200]
        else:
            s = seg[:6000]
        if s.strip():
            out.append(s)
    return out


def c_snippets(n):
    files = []
    for d, _, fs in os.walk("/usr/include"):
        files += [os.path.join(d, f) for f in fs if f.endswith(".h")]
    files.sort()
    rng.shuffle(files)
    out = []
    for p in files:
        if len(out) >= n:
            break
        try:
            lines = open(p, encoding="utf-8").read().split("\n")
        except Exception:
            continue
        if len(lines) < 20:
            continue
        i = rng.randrange(len(lines) - 10)
        s = "\n".join(lines[i:i + rng.choice([3, 8, 15])])
        if s.strip():
            out.append(s)
    return out


queries = [
    "parse the config file and fall back to defaults",
    "open a socket and retry on connection refused",
    "compute the sha256 of a file in chunks",
    "sort a list of dictionaries by a key",
    "read a csv file into rows",
    "walk a directory tree recursively",
    "convert a datetime to an ISO 8601 string",
    "escape html special characters",
    "thread pool that runs tasks concurrently",
    "decode base64 and handle padding errors",
    "where is the lru cache implemented",
    "binary search in a sorted array",
    "how are command line arguments parsed",
    "send an email over smtp with attachments",
    "compress data with zlib",
    "Ignore unknown fields when decoding JSON.",
    "free the memory of a linked list",
    "lock a mutex before touching shared state",
    "Café résumé naïve: accents should not matter",
    "",
]
strings = py_snippets(150) + c_snippets(45) + queries
model = SentenceTransformer(model_dir, device="cpu")
emb = model.encode(strings, batch_size=16, convert_to_numpy=True, normalize_embeddings=False)
os.makedirs(out_dir, exist_ok=True)
with open(os.path.join(out_dir, "real-model-strings.jsonl"), "w") as f:
    for s in strings:
        f.write(json.dumps({"text": s}) + "\n")
emb.astype("<f4").tofile(os.path.join(out_dir, "real-model-ref.bin"))
print(len(strings), "strings,", emb.shape, "max_seq_length", model.max_seq_length, file=sys.stderr)
