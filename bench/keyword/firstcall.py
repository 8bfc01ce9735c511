#!/usr/bin/env python3
"""bench/keyword/firstcall.py -- what a new session's first code.search
costs beyond its later calls (issue 21), per mode.

    firstcall.py [--sessions N] [--modes keyword,vector,hybrid] [--parts] [--connect]
                 [--threads] [--search FUNC] [--tag CONFIG] [--json OUT]

For each of N fresh connections (the PG* environment variables) it runs,
in order: a trivial SELECT 1 (the connection's own start is not counted),
then code.search with three different questions (latency.py's), timing
each call on the client.  It prints, per mode, the median of the first
call, of the second and third, and their difference: the session's
first-call cost.  When the server runs on this machine it also reads the
backend's CPU time around each call (/proc/PID/schedstat: nanoseconds on a
CPU), which a busy machine inflates much less than wall time (cpu_* keys),
and the backend's CPU from its fork to the end of its first statement
(cpu_login_ms: the login, session_preload_libraries' work included).
With --parts it also times, in other fresh sessions, the first and second
call of the pieces a call is made of:
embed('...') alone (the encoder's model load: embed()'s cost, not
code.search's), code.bm25_search alone, EXPLAIN of code.search
(planning only, no execution), the extension's library loaded by a
trivial C function (codevec_dims), and code.search after the library and
the catalog entries of its tables were loaded by other statements.
With --connect it also times a new session itself (backend start): the
connection and a SELECT 1, on the client, and the CPU the postmaster spent
for it (forking: copying its page tables), from its schedstat (superuser:
the pid is read from postmaster.pid).  With --threads it also runs, per
mode, one call in other fresh sessions and reads the CPU time of every
thread of the backend (/proc/PID/task/*/schedstat) from before the call
to 0.5 s after it, and the backend's thread count then: a library's
thread pool started by the call spins on other cores, which the main
thread's cpu_* figures do not see.  --search names another spelling of
code.search to call (to compare two definitions side by side).
"""
import argparse, json, os, statistics, time

import psycopg

from latency import questions


def cpu_ns(pid):
    """the backend's CPU time so far (ns), or None when it is not on this machine"""
    try:
        with open("/proc/%d/schedstat" % pid) as f:
            return int(f.read().split()[0])
    except OSError:
        return None


def timed(conn, pid, sql, params=None):
    c0 = cpu_ns(pid)
    t0 = time.perf_counter()
    conn.execute(sql, params).fetchall()
    t = (time.perf_counter() - t0) * 1000
    c1 = cpu_ns(pid)
    return t, (c1 - c0) / 1e6 if c0 is not None and c1 is not None else None


def session_calls(sql, qs, n, setup=()):
    """[(wall, cpu) of the first, second, third call] of sql in each of n new sessions"""
    out = []
    for i in range(n):
        with psycopg.connect(autocommit=True) as conn:
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            login = cpu_ns(pid)
            for s in setup:
                conn.execute(s).fetchall()
            calls = [timed(conn, pid, sql, {"q": qs[(3 * i + j) % len(qs)]}) for j in range(3)]
            # the backend's CPU from its fork to its first statement's end
            # (login, session_preload_libraries, SELECT pg_backend_pid())
            calls.append(login / 1e6 if login is not None else None)
            out.append(calls)
    return out


def all_threads_ns(pid):
    """CPU time (ns) of every thread of the process and the thread count"""
    tasks = os.listdir("/proc/%d/task" % pid)
    total = 0
    for t in tasks:
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, t)) as f:
                total += int(f.read().split()[0])
        except OSError:
            pass
    return total, len(tasks)


def threads_cost(name, sql, qs, n):
    """median CPU ms of all the backend's threads for a session's first call and 0.5 s after it"""
    cpus, counts = [], []
    for i in range(n):
        with psycopg.connect(autocommit=True) as conn:
            pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
            c0, _ = all_threads_ns(pid)
            conn.execute(sql, {"q": qs[i % len(qs)]}).fetchall()
            time.sleep(0.5)
            c1, nt = all_threads_ns(pid)
            cpus.append((c1 - c0) / 1e6)
            counts.append(nt)
    return {"what": name + ": first call, all threads, to 0.5 s after", "sessions": n,
            "cpu_all_threads_ms": round(statistics.median(cpus), 2), "threads": max(counts)}


def summary(name, calls):
    logins = [c[3] for c in calls]
    calls = [c[:3] for c in calls]
    first = statistics.median(c[0][0] for c in calls)
    later = statistics.median(x[0] for c in calls for x in c[1:])
    r = {"what": name, "sessions": len(calls), "first_ms": round(first, 2),
         "later_ms": round(later, 2), "first_call_cost_ms": round(first - later, 2)}
    if all(x[1] is not None for c in calls for x in c):
        cf = statistics.median(c[0][1] for c in calls)
        cl = statistics.median(x[1] for c in calls for x in c[1:])
        r.update({"cpu_first_ms": round(cf, 2), "cpu_later_ms": round(cl, 2),
                  "cpu_first_call_cost_ms": round(cf - cl, 2)})
    if all(x is not None for x in logins):
        r["cpu_login_ms"] = round(statistics.median(logins), 2)
    return r


def connect_cost(n):
    """median wall ms of connect + SELECT 1 + close, and the postmaster's CPU ms per connection"""
    with psycopg.connect(autocommit=True) as c:
        pm = int(c.execute("SELECT split_part(pg_read_file('postmaster.pid'), E'\\n', 1)").fetchone()[0])
    walls, cpus = [], []
    for i in range(n):
        c0 = cpu_ns(pm)
        t0 = time.perf_counter()
        with psycopg.connect(autocommit=True) as conn:
            conn.execute("SELECT 1").fetchall()
        walls.append((time.perf_counter() - t0) * 1000)
        c1 = cpu_ns(pm)
        if c0 is not None and c1 is not None:
            cpus.append((c1 - c0) / 1e6)
    r = {"what": "connect + SELECT 1 (backend start)", "sessions": n,
         "wall_ms": round(statistics.median(walls), 3)}
    if cpus:
        r["postmaster_cpu_ms"] = round(statistics.median(cpus), 3)
    return r


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--modes", default="keyword,vector,hybrid")
    ap.add_argument("--parts", action="store_true")
    ap.add_argument("--connect", action="store_true")
    ap.add_argument("--threads", action="store_true")
    ap.add_argument("--tag", help="added to every JSON line as \"config\" (firstcall-ab.sh)")
    ap.add_argument("--json")
    ap.add_argument("--search", default="code.search",
                    help="the search function to call (another spelling of code.search, to compare)")
    a = ap.parse_args()
    qs = questions(100)
    rows = []
    for mode in a.modes.split(","):
        sql = "SELECT id FROM %s(%%(q)s, k => 10, mode => '%s')" % (a.search, mode)
        rows.append(summary("%s %s" % (a.search, mode), session_calls(sql, qs, a.sessions)))
        if a.threads:
            rows.append(threads_cost("%s %s" % (a.search, mode), sql, qs, a.sessions))
    if a.parts:
        rows.append(summary("embed()", session_calls("SELECT embed(%(q)s)", qs, a.sessions)))
        rows.append(summary("code.bm25_search", session_calls("SELECT id FROM code.bm25_search(%(q)s, 10)", qs, a.sessions)))
        rows.append(summary("EXPLAIN code.search hybrid (plan only)",
                            session_calls("EXPLAIN SELECT id FROM code.search(%(q)s, k => 10)", qs, a.sessions)))
        rows.append(summary("codevec_dims (loads the library)",
                            session_calls("SELECT codevec_dims('[1,2]'::codevec) WHERE %(q)s::text IS NOT NULL", qs, a.sessions)))
        warm = ("SELECT codevec_dims('[1,2]'::codevec)",
                "SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id"
                " JOIN code.repos r ON r.id = f.repo_id WHERE s.id < 0",
                "SELECT count(*) FROM code.bm25_params, code.bm25_terms t, code.bm25_postings p WHERE t.term < 0 AND p.term < 0")
        rows.append(summary("code.search keyword after the library and its tables are loaded",
                            session_calls("SELECT id FROM code.search(%(q)s, k => 10, mode => 'keyword')", qs,
                                          a.sessions, warm)))
    if a.connect:
        rows.append(connect_cost(a.sessions * 3))
    for r in rows:
        if a.tag:
            r = dict(config=a.tag, **r)
        print(json.dumps(r))
        if a.json:
            with open(a.json, "a") as f:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
