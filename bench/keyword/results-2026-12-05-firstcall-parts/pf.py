import os, subprocess, sys, time, signal, collections, bisect
import psycopg
mode, n = sys.argv[1], int(sys.argv[2])
tot = collections.Counter()
for i in range(n):
    with psycopg.connect(autocommit=True) as c:
        pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
        maps = []
        for l in open("/proc/%d/maps" % pid):
            p = l.split(); lo, hi = [int(x, 16) for x in p[0].split("-")]
            name = p[5] if len(p) > 5 else "[anon]"
            if "zero" in name or "SYSV" in name or "memfd" in name or (p[1][3] == "s" and name == "[anon]"): name = "shared memory (" + name + ")"
            elif name.endswith("/postgres"): name = "postgres binary " + ("text" if "x" in p[1] else "data")
            elif ".so" in name: name = name.split("/")[-1].split(".so")[0] + ".so " + ("text" if "x" in p[1] else "data")
            maps.append((lo, hi, name))
        f = "/tmp/pf%d.data" % i
        pr = subprocess.Popen(["perf", "record", "-e", "page-faults", "-c", "1", "-d", "-p", str(pid), "-o", f], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.4)
        c.execute("SELECT id FROM code.search(%s, k => 10, mode => %s)", ("read a configuration file %d" % i, mode)).fetchall()
        pr.send_signal(signal.SIGINT); pr.wait()
        out = subprocess.run(["perf", "script", "-i", f, "-F", "addr"], capture_output=True, text=True).stdout.split()
        los = [m[0] for m in maps]
        for a in out:
            a = int(a, 16); k = bisect.bisect_right(los, a) - 1
            name = maps[k][2] if k >= 0 and maps[k][0] <= a < maps[k][1] else "new mapping (malloc arena growth, mmap)"
            tot[name] += 1
        os.unlink(f)
print(mode, "faults per first call (mean of %d sessions):" % n)
for k, v in tot.most_common(12): print("  %6.1f %s" % (v / n, k))
