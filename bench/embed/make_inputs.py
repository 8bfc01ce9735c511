#!/usr/bin/env python3
"""Write the benchmark inputs: a 12-token query and real code snippets that
fill exactly 128 and 256 tokens ([CLS] and [SEP] included) for the model.

    python3 make_inputs.py MODEL_DIR OUT.json [N_SNIPPETS]

Snippets are windows of the committed real-model fixture strings (CPython
and C header sources), each long enough to be truncated to the budget.
"""
import json
import os
import sys

from tokenizers import Tokenizer

model_dir, out = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 64
here = os.path.dirname(os.path.abspath(__file__))
fx = os.path.join(here, "..", "..", "test", "embed", "fixtures", "real-model-strings.jsonl")
text = "\n".join(json.loads(l)["text"] for l in open(fx))
tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
tok.no_padding()
query = "compute the sha256 of a file in chunks"
tok.no_truncation()
assert len(tok.encode(query).ids) == 12
res = {"query": query, "query_list": [query]}
for size in (128, 256):
    snippets, pos = [], 0
    while len(snippets) < n:
        s = text[pos:pos + 4000]
        pos = (pos + 1733) % (len(text) - 4000)
        if len(tok.encode(s).ids) >= size:
            snippets.append(s)
    res[f"snippets_{size}"] = snippets
json.dump(res, open(out, "w"))
