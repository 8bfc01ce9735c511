#!/usr/bin/env python3
"""Write fuzz_model's seed inputs: model folders as one file each.

    python3 make_model_seeds.py OUT_DIR

Each input is the folder's files (config.json, vocab.txt, model.safetensors,
tokenizer_config.json, modules.json, 1_Pooling/config.json,
sentence_bert_config.json, in that order; an empty part where one is absent)
joined by the line "\\n--codevec-fuzz-file--\\n", as fuzz_model.c reads it.
Folders: a micro BERT made here (hidden 4, 1 layer, 8 positions, 12-token
vocabulary, F32 and F16 weights, mean and CLS pooling: small, so the
fuzzer mutates headers rather than weights) and test/embed's bad-config and
bad-safetensors fixtures.  Standard library only.
"""
import json
import os
import struct
import sys

SEP = b"\n--codevec-fuzz-file--\n"
NAMES = ["config.json", "vocab.txt", "model.safetensors", "tokenizer_config.json",
         "modules.json", "1_Pooling/config.json", "sentence_bert_config.json"]
HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "embed", "fixtures")


def safetensors(tensors, dtype):
    """safetensors bytes: 8-byte header length, JSON header, data (values i/100)."""
    header, blobs, off = {}, [], 0
    for name, shape in tensors:
        n = 1
        for d in shape:
            n *= d
        vals = [((i * 7) % 23 - 11) / 100 for i in range(n)]
        blob = struct.pack("<%d%s" % (n, "f" if dtype == "F32" else "e"), *vals)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def micro(dtype, pooling, prefix):
    H, I, P, V, T = 4, 4, 8, 12, 2
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "##a", "##b", "def", "(", ")"]
    config = {"model_type": "bert", "hidden_act": "gelu", "hidden_size": H, "num_hidden_layers": 1,
              "num_attention_heads": 2, "intermediate_size": I, "max_position_embeddings": P,
              "type_vocab_size": T, "vocab_size": V, "layer_norm_eps": 1e-12,
              "position_embedding_type": "absolute"}
    t = [("embeddings.word_embeddings.weight", [V, H]), ("embeddings.position_embeddings.weight", [P, H]),
         ("embeddings.token_type_embeddings.weight", [T, H]), ("embeddings.LayerNorm.weight", [H]),
         ("embeddings.LayerNorm.bias", [H])]
    for name, shape in [("attention.self.query.weight", [H, H]), ("attention.self.query.bias", [H]),
                        ("attention.self.key.weight", [H, H]), ("attention.self.key.bias", [H]),
                        ("attention.self.value.weight", [H, H]), ("attention.self.value.bias", [H]),
                        ("attention.output.dense.weight", [H, H]), ("attention.output.dense.bias", [H]),
                        ("attention.output.LayerNorm.weight", [H]), ("attention.output.LayerNorm.bias", [H]),
                        ("intermediate.dense.weight", [I, H]), ("intermediate.dense.bias", [I]),
                        ("output.dense.weight", [H, I]), ("output.dense.bias", [H]),
                        ("output.LayerNorm.weight", [H]), ("output.LayerNorm.bias", [H])]:
        t.append(("encoder.layer.0." + name, shape))
    t = [(prefix + n, s) for n, s in t]
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
               {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"}]
    pool = {"word_embedding_dimension": H, "pooling_mode_cls_token": pooling == "cls",
            "pooling_mode_mean_tokens": pooling == "mean"}
    return [json.dumps(config).encode(), ("\n".join(vocab) + "\n").encode(), safetensors(t, dtype),
            json.dumps({"do_lower_case": True, "strip_accents": None}).encode(),
            json.dumps(modules).encode(), json.dumps(pool).encode(),
            json.dumps({"max_seq_length": 8, "do_lower_case": False}).encode()]


def folder(path):
    parts = []
    for n in NAMES:
        p = os.path.join(path, n)
        parts.append(open(p, "rb").read() if os.path.exists(p) else b"")
    return parts


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    seeds = {"micro-f32-mean": micro("F32", "mean", ""), "micro-f16-cls": micro("F16", "cls", "bert."),
             "bad-config": folder(os.path.join(FIXTURES, "bad-config")),
             "bad-safetensors": folder(os.path.join(FIXTURES, "bad-safetensors"))}
    for name, parts in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(SEP.join(parts))


main()
