#!/usr/bin/env python3
"""bench/keyword/latency.py -- one-client latency of keyword top-k queries.

    latency.py METHOD [--queries N] [--k K] [--warmup W] [--json OUT]

METHOD is one of the SQL texts below (each takes the question as $1 and k
as $2).  The questions are every (2400 / N)-th question of bench/quality's
queries.tsv.gz (natural-language docstring first sentences), so every
method sees the same ones.  Connection: the PG* environment variables.
Prints p50, p95, mean (ms) and the mean number of rows returned, and the
server backend's CPU time per question (utime + stime from /proc: a local
server only; less sensitive than wall time to other jobs on the machine).
"""
import argparse, gzip, json, os, statistics, sys, time

import psycopg

HERE = os.path.dirname(os.path.abspath(__file__))
METHODS = {
    # today's keyword list (code.search's klist without filters)
    "tsrank": "SELECT id FROM code.snippets WHERE tsv @@ code.keyword_query(%(q)s) "
              "ORDER BY ts_rank(tsv, code.keyword_query(%(q)s)) DESC, id LIMIT %(k)s",
    # RUM: the index orders by its own rank (tsv <=> query)
    "rum": "SELECT id FROM code.snippets WHERE tsv @@ code.keyword_query(%(q)s) "
           "ORDER BY tsv <=> code.keyword_query(%(q)s) LIMIT %(k)s",
    # BM25, pruned top-k (code.bm25_search: block-max pruning over
    # doc-ordered blocks)
    "bm25": "SELECT id FROM code.bm25_search(%(q)s, %(k)s)",
    # BM25, Fagin's combined algorithm over impact-ordered lists (what
    # code.bm25_search ran before the blocks; run.sh's fagin step makes
    # public.bm25_fagin and its postings)
    "fagin": "SELECT id FROM public.bm25_fagin(%(q)s, %(k)s)",
    # BM25 through code.search's keyword mode
    "search": "SELECT id FROM code.search(%(q)s, k => %(k)s, mode => 'keyword')",
    # BM25, every match scored (what the pruned top-k must equal)
    "bm25full": "SELECT id FROM code.bm25_search_full(%(q)s, %(k)s)",
}


def backend_cpu(conn):
    """CPU ms the connection's server backend has used (None: not readable here)."""
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    try:
        f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(f[11]) + int(f[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def questions(n):
    with gzip.open(os.path.join(HERE, "..", "quality", "queries.tsv.gz"), "rt") as f:
        rows = [l.rstrip("\n").split("\t") for l in f][1:]
    step = max(1, len(rows) // n)
    return [r[7] for r in rows[::step]][:n]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("method", choices=sorted(METHODS))
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--json")
    a = ap.parse_args()
    qs = questions(a.queries)
    sql = METHODS[a.method]
    times, rows = [], []
    with psycopg.connect(autocommit=True) as conn:
        for q in qs[:a.warmup]:
            conn.execute(sql, {"q": q, "k": a.k}).fetchall()
        cpu0 = backend_cpu(conn)
        for q in qs:
            t0 = time.perf_counter()
            r = conn.execute(sql, {"q": q, "k": a.k}).fetchall()
            times.append((time.perf_counter() - t0) * 1000)
            rows.append(len(r))
        cpu1 = backend_cpu(conn)
    times.sort()
    res = {"method": a.method, "k": a.k, "queries": len(qs),
           "p50_ms": round(statistics.median(times), 2),
           "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2),
           "mean_ms": round(statistics.mean(times), 2),
           "mean_rows": round(statistics.mean(rows), 1),
           "backend_cpu_ms_per_query": round((cpu1 - cpu0) / len(qs), 2) if cpu0 is not None else None}
    print(json.dumps(res))
    if a.json:
        with open(a.json, "a") as f:
            f.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
