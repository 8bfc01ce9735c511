#!/usr/bin/env python3
"""bench/quality/bm25_tune.py -- BM25 keyword quality on the benchmark, and
the choice of k1, b and the field weights on half of the queries.

    bm25_tune.py [--out results-bm25.json]

Reads the loaded benchmark database (PG* variables: the 36,302 snippets
bench/quality/run.sh loads, embeddings not needed) once: every snippet's
tsv and every query's lexemes and target.  Scores BM25 offline with numpy
(the definition of test/search/bm25ref.py and src/bm25.c, in float64)
for a grid of k1 x b x weights, picks the best MRR@10 on the odd queries
(qid odd) and reports it on the even ones, with a bootstrap 95% CI of the
gain over ts_rank's keyword list (code.search's keyword mode before BM25,
computed in SQL here on the same queries).
"""
import argparse, collections, itertools, json, math, os, re, sys, time

import numpy as np
import psycopg

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "test", "search"))
sys.path.insert(0, HERE)
import bm25ref  # noqa: E402
from eval import read_queries, resolve_targets  # noqa: E402

K1S = [0.6, 0.9, 1.2, 1.5, 2.0, 3.0]
BS = [0.3, 0.5, 0.75, 0.9]
WEIGHTS = [  # {D body, C doc, B signature, A name}
    (0.1, 0.2, 0.4, 1.0),    # ts_rank's default
    (1.0, 1.0, 1.0, 1.0),    # no field weights
    (0.2, 0.4, 0.6, 1.0),
    (0.3, 0.5, 0.5, 1.0),
    (0.5, 0.5, 1.0, 2.0),
    (0.05, 0.2, 0.4, 1.0),
    (0.2, 0.3, 0.3, 1.0),
    (0.4, 0.6, 0.6, 1.0),
]


def load(conn):
    queries = resolve_targets(conn, read_queries(os.path.join(HERE, "queries.tsv.gz")))
    with conn.cursor() as cur:
        cur.execute("SELECT id, tsv::text FROM code.snippets WHERE tsv IS NOT NULL ORDER BY id")
        docs = cur.fetchall()
        cur.execute("CREATE TEMP TABLE qtext (qid int, q text)")
        with cur.copy("COPY qtext FROM STDIN") as cp:
            for q in queries:
                cp.write_row((q["qid"], q["query"]))
        cur.execute("SELECT qid, tsvector_to_array(to_tsvector('codevec_code', q)) FROM qtext")
        qlex = dict(cur.fetchall())
        # ts_rank's list, as code.search's keyword mode ranked before BM25
        cur.execute("""SELECT t.qid, (SELECT array_agg(x.id) FROM (SELECT s.id FROM code.snippets s
                         WHERE s.tsv @@ code.keyword_query(t.q)
                         ORDER BY ts_rank(s.tsv, code.keyword_query(t.q)) DESC, s.id LIMIT 10) x)
                       FROM qtext t""")
        tsrank = {qid: ids or [] for qid, ids in cur.fetchall()}
    return queries, docs, qlex, tsrank


def build(docs):
    """Postings per lexeme: doc index and position counts per weight class."""
    ids = np.array([d[0] for d in docs], dtype=np.int64)
    post = collections.defaultdict(lambda: ([], []))
    for j, (_, text) in enumerate(docs):
        for lex, pos in bm25ref.parse_tsvector(text).items():
            c = [0, 0, 0, 0]
            if pos is None:
                c[0] = 1
            else:
                for w in pos:
                    c[w] += 1
            post[lex][0].append(j)
            post[lex][1].append(c)
    lexemes = list(post)
    start = np.zeros(len(lexemes) + 1, dtype=np.int64)
    for i, l in enumerate(lexemes):
        start[i + 1] = start[i] + len(post[l][0])
    doc = np.concatenate([np.array(post[l][0], dtype=np.int64) for l in lexemes])
    cnt = np.concatenate([np.array(post[l][1], dtype=np.float64) for l in lexemes])
    return ids, {l: i for i, l in enumerate(lexemes)}, start, doc, cnt


def ranks_for(params, index, queries, qlex, ndocs):
    k1, b, w = params
    ids, lexid, start, doc, cnt = index
    tf = cnt @ np.array(w)
    dl = np.bincount(doc, weights=tf, minlength=ndocs)
    avgdl = dl.mean()
    imp = tf * (k1 + 1) / (tf + k1 * (1 - b + b * dl[doc] / avgdl))
    out = {}
    for q in queries:
        score = np.zeros(ndocs)
        for l in set(qlex[q["qid"]]):
            t = lexid.get(l)
            if t is None:
                continue
            s, e = start[t], start[t + 1]
            df = e - s
            score[doc[s:e]] += math.log(1 + (ndocs - df + 0.5) / (df + 0.5)) * imp[s:e]
        cand = np.flatnonzero(score > 0)
        if len(cand) > 200:
            cand = cand[np.argpartition(-score[cand], 200)[:200]]
        order = cand[np.lexsort((ids[cand], -score[cand]))][:10]
        top = list(ids[order])
        out[q["qid"]] = top.index(q["target"]) + 1 if q["target"] in top else 0
    return out


def mrr(ranks, qids):
    return sum(1.0 / ranks[q] for q in qids if ranks[q]) / len(qids)


def boot_ci(a, b, qids, n=2000, seed=7):
    rng = np.random.default_rng(seed)
    d = np.array([(1.0 / a[q] if a[q] else 0) - (1.0 / b[q] if b[q] else 0) for q in qids])
    means = [d[rng.integers(0, len(d), len(d))].mean() for _ in range(n)]
    return float(d.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "results-bm25.json"))
    a = ap.parse_args()
    t0 = time.time()
    with psycopg.connect(autocommit=True) as conn:
        queries, docs, qlex, tsrank = load(conn)
    index = build(docs)
    ndocs = len(docs)
    print("%d snippets, %d queries, %d lexemes, %d postings (%.0f s)" % (
        ndocs, len(queries), len(index[1]), len(index[3]), time.time() - t0), file=sys.stderr)
    odd = [q["qid"] for q in queries if q["qid"] % 2 == 1]
    even = [q["qid"] for q in queries if q["qid"] % 2 == 0]
    allq = odd + even
    ts = {q["qid"]: (tsrank[q["qid"]].index(q["target"]) + 1
                     if q["target"] in tsrank[q["qid"]] else 0) for q in queries}
    grid = []
    for k1, b, w in itertools.product(K1S, BS, WEIGHTS):
        r = ranks_for((k1, b, w), index, queries, qlex, ndocs)
        grid.append(dict(k1=k1, b=b, weights=w, mrr_odd=mrr(r, odd), mrr_even=mrr(r, even),
                         mrr_all=mrr(r, allq)))
        print("k1 %.1f b %.2f w %-24s odd %.3f even %.3f" % (k1, b, w, grid[-1]["mrr_odd"],
                                                           grid[-1]["mrr_even"]), file=sys.stderr)
    best = max(grid, key=lambda g: g["mrr_odd"])
    rb = ranks_for((best["k1"], best["b"], best["weights"]), index, queries, qlex, ndocs)
    by_lang = {}
    for lang in sorted({q["language"] for q in queries}):
        qs = [q["qid"] for q in queries if q["language"] == lang and q["qid"] % 2 == 0]
        by_lang[lang] = dict(bm25=mrr(rb, qs), ts_rank=mrr(ts, qs))
    gain = boot_ci(rb, ts, even)
    res = dict(snippets=ndocs, queries=len(queries), tune="odd qids", report="even qids",
               best=best, ts_rank=dict(mrr_odd=mrr(ts, odd), mrr_even=mrr(ts, even),
                                       mrr_all=mrr(ts, allq)),
               gain_even_vs_ts_rank=dict(mean=gain[0], ci95=[gain[1], gain[2]]),
               even_by_language=by_lang, grid=grid, seconds=round(time.time() - t0))
    json.dump(res, open(a.out, "w"), indent=1)
    print(json.dumps({k: res[k] for k in ("best", "ts_rank", "gain_even_vs_ts_rank",
                                          "even_by_language")}, indent=1))


if __name__ == "__main__":
    main()
