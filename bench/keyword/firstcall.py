#!/usr/bin/env python3
"""bench/keyword/firstcall.py -- what a new session's first code.search
costs beyond its later calls (issue 21), per mode.

    firstcall.py [--sessions N] [--modes keyword,vector,hybrid] [--json OUT]

For each of N fresh connections (the PG* environment variables) it runs,
in order: a trivial SELECT 1 (the connection's own start is not counted),
then code.search with three different questions (latency.py's), timing
each call on the client.  It prints, per mode, the median of the first
call, of the second and third, and their difference: the session's
first-call cost.  With --parts it also times, in other fresh sessions,
the first and second call of the pieces a call is made of:
embed('...') alone (the encoder's model load: embed()'s cost, not
code.search's), code.bm25_search alone, and EXPLAIN of code.search
(planning only, no execution).
"""
import argparse, json, statistics, time

import psycopg

from latency import questions


def timed(conn, sql, params=None):
    t0 = time.perf_counter()
    conn.execute(sql, params).fetchall()
    return (time.perf_counter() - t0) * 1000


def session_calls(sql, qs, n):
    """[first, second, third] call times (ms) of sql in each of n new sessions."""
    out = []
    for i in range(n):
        with psycopg.connect(autocommit=True) as conn:
            conn.execute("SELECT 1").fetchall()
            out.append([timed(conn, sql, {"q": qs[(3 * i + j) % len(qs)]}) for j in range(3)])
    return out


def summary(name, calls):
    first = statistics.median(c[0] for c in calls)
    later = statistics.median(x for c in calls for x in c[1:])
    return {"what": name, "sessions": len(calls), "first_ms": round(first, 2),
            "later_ms": round(later, 2), "first_call_cost_ms": round(first - later, 2)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--modes", default="keyword,vector,hybrid")
    ap.add_argument("--parts", action="store_true")
    ap.add_argument("--json")
    a = ap.parse_args()
    qs = questions(100)
    rows = []
    for mode in a.modes.split(","):
        sql = "SELECT id FROM code.search(%%(q)s, k => 10, mode => '%s')" % mode
        rows.append(summary("code.search " + mode, session_calls(sql, qs, a.sessions)))
    if a.parts:
        rows.append(summary("embed()", session_calls("SELECT embed(%(q)s)", qs, a.sessions)))
        rows.append(summary("code.bm25_search", session_calls("SELECT id FROM code.bm25_search(%(q)s, 10)", qs, a.sessions)))
        rows.append(summary("EXPLAIN code.search hybrid (plan only)",
                            session_calls("EXPLAIN SELECT id FROM code.search(%(q)s, k => 10)", qs, a.sessions)))
    for r in rows:
        print(json.dumps(r))
        if a.json:
            with open(a.json, "a") as f:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
