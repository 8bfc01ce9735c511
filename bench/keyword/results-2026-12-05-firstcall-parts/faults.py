import psycopg, os, sys, statistics
def minflt(pid):
    return int(open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()[7])
def cpu(pid):
    return int(open("/proc/%d/schedstat" % pid).read().split()[0]) / 1e6
n = int(sys.argv[1]); sqls = sys.argv[2:]
res = {s: [] for s in sqls}
for i in range(n):
    with psycopg.connect(autocommit=True) as c:
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        for s in sqls:
            f0, c0 = minflt(pid), cpu(pid)
            c.execute(s.replace("%d", str(i))).fetchall()
            res[s].append((minflt(pid) - f0, cpu(pid) - c0))
for s in sqls:
    print("%6d faults %7.2f ms  %s" % (statistics.median(x[0] for x in res[s]), statistics.median(x[1] for x in res[s]), s[:110]))
