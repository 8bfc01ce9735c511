#!/usr/bin/env python3
"""perf record of one call in fresh sessions: prof.py OUTDIR N WHICH(first|second) SQL [SETUP...]"""
import os, subprocess, sys, time, signal
import psycopg
out, n, which, sql = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
setup = sys.argv[5:]
os.makedirs(out, exist_ok=True)
qs = ["read a configuration file", "parse the headers of a message", "send data over a socket",
      "open a file and write lines", "format a log record", "decode json into objects"]
for i in range(n):
    with psycopg.connect(autocommit=True) as c:
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        for s in setup:
            c.execute(s).fetchall()
        if which == "second":
            c.execute(sql, {"q": qs[(i + 3) % len(qs)]}).fetchall()
        p = subprocess.Popen(["perf", "record", "-F", "20000", "--call-graph", "dwarf,32768", "-p", str(pid),
                              "-o", "%s/p%02d.data" % (out, i)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.4)
        c.execute(sql, {"q": qs[i % len(qs)]}).fetchall()
        p.send_signal(signal.SIGINT); p.wait()
