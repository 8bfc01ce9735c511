#!/usr/bin/env python3
"""Fidelity of codevec's int8 encoder to its fp32 one (issue 20).

    python quality.py cosine FP32.f32 INT8.f32 [ORT_INT8.f32 ...]
        cosine of each row of INT8 (and any other file) to the same row of
        FP32 (N x 384 float32, bench_int8.c / bench_ort.py output): min,
        mean, percentiles.  Prints JSON.
    python quality.py subset SET.json.gz OUT_DIR [QUERIES_PER_LANG [CORPUS]]
        a retrieval subset of bench/quality's public benchmark: the first
        QUERIES_PER_LANG (150) queries of each language, a corpus of CORPUS
        (6000) snippets = every target plus others drawn at random (seed 1);
        writes OUT_DIR/corpus.jsonl, OUT_DIR/queries.jsonl (JSON strings for
        bench_int8) and OUT_DIR/subset.json (targets as corpus rows).
        SET.json.gz: offline-eval.py export's file ({snippets: [[id, text]],
        queries: [{query, language, target}]}), or a file with the same
        under groups[name = "public"] (targets: [id, ...]).
    python quality.py mrr OUT_DIR CORPUS_EMB QUERY_EMB
        MRR@10 of the queries over the corpus by exact cosine ranking (what
        code.search's vector mode does with a flat index), overall and per
        language.  Prints JSON.
"""
import gzip
import json
import os
import random
import sys

import numpy as np


def load(path, n_dims=384):
    return np.fromfile(path, dtype=np.float32).reshape(-1, n_dims)


def cosine(ref, others):
    a = load(ref)
    res = {"rows": len(a)}
    for o in others:
        b = load(o)
        c = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        res[os.path.basename(o)] = {
            "min": float(c.min()), "mean": float(c.mean()),
            "p0.1": float(np.percentile(c, 0.1)), "p1": float(np.percentile(c, 1)),
            "p50": float(np.median(c)), "below_0.99": int((c < 0.99).sum()),
            "below_0.999": int((c < 0.999).sum())}
    print(json.dumps(res, indent=1))


def subset(set_path, out_dir, per_lang=150, corpus=6000):
    d = json.load(gzip.open(set_path, "rt", encoding="utf-8"))
    if "groups" in d:
        d = next(g for g in d["groups"] if g["name"] == "public")
    snippets = {sid: text for sid, text in d["snippets"]}
    qs, count = [], {}
    for q in d["queries"]:
        targets = q.get("targets") or ([q["target"]] if q.get("target") is not None else [])
        if not targets or count.get(q["language"], 0) >= per_lang:
            continue
        count[q["language"]] = count.get(q["language"], 0) + 1
        qs.append({"query": q["query"], "language": q["language"], "targets": targets})
    ids = sorted({t for q in qs for t in q["targets"]})
    rest = sorted(set(snippets) - set(ids))
    random.Random(1).shuffle(rest)
    ids = sorted(ids + rest[:max(0, corpus - len(ids))])
    row = {sid: i for i, sid in enumerate(ids)}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "corpus.jsonl"), "w") as f:
        for sid in ids:
            f.write(json.dumps(snippets[sid]) + "\n")
    with open(os.path.join(out_dir, "queries.jsonl"), "w") as f:
        for q in qs:
            f.write(json.dumps(q["query"]) + "\n")
    json.dump({"snippet_ids": ids, "queries": [
        {"language": q["language"], "targets": [row[t] for t in q["targets"]]} for q in qs]},
        open(os.path.join(out_dir, "subset.json"), "w"))
    print(json.dumps({"queries": len(qs), "per_language": count, "corpus": len(ids)}))


def mrr(out_dir, corpus_emb, query_emb):
    sub = json.load(open(os.path.join(out_dir, "subset.json")))
    c, q = load(corpus_emb), load(query_emb)
    c = c / np.linalg.norm(c, axis=1, keepdims=True)
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    sims = q @ c.T
    rr, per = [], {}
    for i, meta in enumerate(sub["queries"]):
        order = np.argsort(-sims[i], kind="stable")[:10]
        r = next((1.0 / (k + 1) for k, j in enumerate(order) if j in meta["targets"]), 0.0)
        rr.append(r)
        per.setdefault(meta["language"], []).append(r)
    print(json.dumps({"queries": len(rr), "corpus": len(c), "mrr@10": float(np.mean(rr)),
                      "per_language": {k: float(np.mean(v)) for k, v in sorted(per.items())},
                      "rr": rr}))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "cosine":
        cosine(args[0], args[1:])
    elif cmd == "subset":
        subset(args[0], args[1], *(int(a) for a in args[2:]))
    else:
        mrr(*args)
