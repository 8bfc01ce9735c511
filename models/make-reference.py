#!/usr/bin/env python3
"""Compute a shipped model's reference embeddings with sentence-transformers.

    python3 models/make-reference.py MODEL_DIR [--out DIR] [--device cpu|cuda]
                                     [--strings models/reference-strings.jsonl]

Embeds the 200 committed strings (models/reference-strings.jsonl, chosen by
make-strings.py from the benchmark's code and questions) with
sentence-transformers, the library the model was trained and is published
with, and writes into --out (default: MODEL_DIR):

  reference.f32   little-endian float32, one row of `dims` floats per
                  string, in the strings' order (the test compares
                  embed() and the C encoder with these: cosine >= 0.99999)
  reference.json  what made them: the sha256 of model.safetensors and of
                  the strings file, dims, max_seq_length, dtype, device,
                  library versions, date

The weights are loaded as stored (float16) and computed in float32, as
codevec's CPU encoder does (it widens float16 to float32 at load), with
the model's own max_seq_length (sentence_bert_config.json: 256, the same
as codevec.max_tokens' default), no extra normalisation (2_Normalize of
modules.json does it).  Nothing is downloaded: MODEL_DIR must be a full
sentence-transformers folder, and HF_HUB_OFFLINE is set.

Runs where torch and sentence-transformers are installed, for instance
on the lent H200 (see models/README.md), or here in a venv:

    python3 -m venv /tmp/ref-venv
    /tmp/ref-venv/bin/pip install torch==2.11.0 transformers==5.17.0 \
        sentence-transformers==6.2.0 scikit-learn scipy
    /tmp/ref-venv/bin/python models/make-reference.py models/code-minilm-l6

(the references committed for the placeholder were made that way, with
those versions, on the CPU; PyPI's torch wheel for Linux carries CUDA
libraries and runs on the CPU as well).
"""
import argparse
import datetime
import hashlib
import json
import os
import platform
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

HERE = os.path.dirname(os.path.abspath(__file__))


def sha256(path):
    """Return the hex sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model_dir")
    ap.add_argument("--out", help="folder for reference.{f32,json} (default: MODEL_DIR)")
    ap.add_argument("--strings", default=os.path.join(HERE, "reference-strings.jsonl"))
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    args = ap.parse_args()
    out = args.out or args.model_dir

    import numpy as np
    import torch
    import sentence_transformers
    import transformers
    from sentence_transformers import SentenceTransformer

    weights = os.path.join(args.model_dir, "model.safetensors")
    if not os.path.isfile(weights) or os.path.getsize(weights) < 1 << 20:
        sys.exit("make-reference: %s is missing or not a weights file" % weights)
    # 2_Normalize holds no file, so git does not keep the folder; the
    # module needs it to exist
    with open(os.path.join(args.model_dir, "modules.json")) as f:
        for mod in json.load(f):
            if mod.get("path") and not os.path.isdir(os.path.join(args.model_dir, mod["path"])):
                os.makedirs(os.path.join(args.model_dir, mod["path"]))
    if args.threads:
        torch.set_num_threads(args.threads)
    texts = []
    with open(args.strings, encoding="utf-8") as f:
        for line in f:
            texts.append(json.loads(line)["text"])

    # float16 weights, float32 arithmetic (a local folder: nothing is
    # fetched, and HF_HUB_OFFLINE makes sure; no version-specific keyword
    # arguments, so that older sentence-transformers run it too)
    model = SentenceTransformer(args.model_dir, device=args.device)
    model.float()
    model.eval()
    with torch.no_grad():
        emb = model.encode(texts, batch_size=16, convert_to_numpy=True,
                           normalize_embeddings=False, show_progress_bar=False)
    emb = np.ascontiguousarray(emb, dtype="<f4")
    if not np.isfinite(emb).all():
        sys.exit("make-reference: non-finite embeddings")
    os.makedirs(out, exist_ok=True)
    emb.tofile(os.path.join(out, "reference.f32"))
    with open(weights, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
    dtypes = sorted({v["dtype"] for k, v in header.items() if k != "__metadata__"})
    meta = {
        "strings": os.path.basename(args.strings),
        "strings_sha256": sha256(args.strings),
        "count": len(texts),
        "dims": int(emb.shape[1]),
        "model_safetensors_sha256": sha256(weights),
        "weight_dtypes": dtypes,
        "compute_dtype": "float32",
        "max_seq_length": model.max_seq_length,
        "device": args.device,
        "reference_sha256": sha256(os.path.join(out, "reference.f32")),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__,
                     "sentence_transformers": sentence_transformers.__version__,
                     "numpy": np.__version__},
        "machine": platform.machine() + " " + platform.node(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python3 models/make-reference.py " + " ".join(sys.argv[1:]),
    }
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print("make-reference: %d x %d -> %s (model sha256 %s)" %
          (emb.shape[0], emb.shape[1], out, meta["model_safetensors_sha256"]), file=sys.stderr)


if __name__ == "__main__":
    main()
