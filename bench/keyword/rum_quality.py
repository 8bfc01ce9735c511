#!/usr/bin/env python3
"""bench/keyword/rum_quality.py -- MRR@10 of RUM's index-ordered rank
(ORDER BY tsv <=> code.keyword_query(q) LIMIT 10, a RUM index on tsv) on
bench/quality's 2,400 questions, in the loaded benchmark database (PG*
variables; CREATE EXTENSION rum and the index are made if missing).
"""
import json, os, sys, time

import psycopg

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "quality"))
from eval import metrics, read_queries, resolve_targets  # noqa: E402

with psycopg.connect(autocommit=True) as conn:
    conn.execute("CREATE EXTENSION IF NOT EXISTS rum")
    conn.execute("CREATE INDEX IF NOT EXISTS snippets_tsv_rum ON code.snippets USING rum (tsv rum_tsvector_ops)")
    qs = resolve_targets(conn, read_queries(os.path.join(HERE, "..", "quality", "queries.tsv.gz")))
    ranks, t0 = {}, time.time()
    for q in qs:
        ids = [r[0] for r in conn.execute(
            "SELECT id FROM code.snippets WHERE tsv @@ code.keyword_query(%(q)s)"
            " ORDER BY tsv <=> code.keyword_query(%(q)s) LIMIT 10", {"q": q["query"]})]
        ranks[q["qid"]] = ids.index(q["target"]) + 1 if q["target"] in ids else 0
    m = metrics(qs, ranks)
    odd = [q for q in qs if q["qid"] % 2]
    even = [q for q in qs if not q["qid"] % 2]
    print(json.dumps({"rum_mrr10_all": round(m["all"]["mrr10"], 4),
                      "odd": round(metrics(odd, ranks)["all"]["mrr10"], 4),
                      "even": round(metrics(even, ranks)["all"]["mrr10"], 4),
                      "r1": round(m["all"]["r1"], 4), "r10": round(m["all"]["r10"], 4),
                      "seconds": round(time.time() - t0)}))
