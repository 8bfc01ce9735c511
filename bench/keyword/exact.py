#!/usr/bin/env python3
"""bench/keyword/exact.py -- on a large corpus, the pruned top-k
(code.bm25_search) against every match scored and summed in SQL
(code.bm25_search_full), for the questions latency.py uses.

    exact.py [--queries N] [--k K] [--pruned FUNCTION]

FUNCTION (default code.bm25_search) is the pruned top-k to check.

Rows must be equal; where the id lists differ the scores must agree to
1e-9 (SQL's sum adds the terms in another order: ties may swap).  Prints
the counts and exits 1 on a real difference.
"""
import argparse, json, sys

import psycopg

from latency import questions


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--pruned", default="code.bm25_search")
    a = ap.parse_args()
    same = swapped = bad = 0
    with psycopg.connect(autocommit=True) as conn:
        for q in questions(a.queries):
            p = conn.execute("SELECT id, score FROM %s(%%s, %%s)" % a.pruned, (q, a.k)).fetchall()
            f = conn.execute("SELECT id, score FROM code.bm25_search_full(%s, %s)", (q, a.k)).fetchall()
            if p == f or [i for i, _ in p] == [i for i, _ in f]:
                same += 1
            elif len(p) == len(f) and all(abs(x[1] - y[1]) <= 1e-9 * max(1, abs(y[1])) for x, y in zip(p, f)):
                swapped += 1
            else:
                bad += 1
                print("differs: %r" % q, file=sys.stderr)
    print(json.dumps({"pruned": a.pruned, "k": a.k, "queries": a.queries, "identical": same,
                      "ties_swapped": swapped, "different": bad}))
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
