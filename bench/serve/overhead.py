#!/usr/bin/env python3
"""bench/serve/overhead.py -- the API's overhead over code.search, measured
within each request so that a busy machine shifts both sides alike: N
sequential GET /api/search on one keep-alive connection; for each, the
client's round trip and the server's own timings (db_ms: the statement's
round trip to PostgreSQL; total_ms: the server's whole handling).

usage: overhead.py BASE_URL MODE QUERY [N]
prints: p50 round trip, p50 db_ms, p50 (round trip - db_ms), p99 of that (ms)
"""
import http.client
import json
import statistics
import sys
import time
import urllib.parse

base, mode, query = sys.argv[1], sys.argv[2], sys.argv[3]
n = int(sys.argv[4]) if len(sys.argv) > 4 else 300
u = urllib.parse.urlsplit(base)
conn = http.client.HTTPConnection(u.hostname, u.port)
path = "/api/search?" + urllib.parse.urlencode({"q": query, "mode": mode, "k": 10})
rtt, db, over = [], [], []
for i in range(n + 10):
    t0 = time.perf_counter()
    conn.request("GET", path)
    body = conn.getresponse().read()
    t = (time.perf_counter() - t0) * 1e3
    if i < 10:
        continue            # warm-up
    d = json.loads(body)["timings"]["db_ms"]
    rtt.append(t)
    db.append(d)
    over.append(t - d)
over.sort()
print("%.2f %.2f %.2f %.2f" % (statistics.median(rtt), statistics.median(db), statistics.median(over),
                               over[int(len(over) * 0.99)]))
