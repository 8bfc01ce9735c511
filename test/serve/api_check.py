#!/usr/bin/env python3
"""test/serve/api_check.py -- codevec-serve's JSON API against the SQL
functions (read with psql, the independent reference), then bad input:
missing, malformed and overlong parameters, invalid UTF-8, SQL injection
attempts, paths outside the page, slow clients and 1,000 concurrent
requests.

usage: api_check.py BASE_URL SERVER_PID
PG* variables name the test database.  Prints "ok - ..." / "not ok - ..."
lines (run.sh numbers and counts them).
"""
import concurrent.futures
import json
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from common import COMMON, ok, sql_json

BASE, PID = sys.argv[1], int(sys.argv[2])
HOST, PORT = urllib.parse.urlsplit(BASE).hostname, urllib.parse.urlsplit(BASE).port




def get(path, headers=None, method="GET", raw=False):
    """(status, parsed JSON body or None, headers)"""
    req = urllib.request.Request(BASE + path, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            body = resp.read()
            return resp.status, (body if raw else json.loads(body) if body else None), resp.headers
    except urllib.error.HTTPError as e:
        body = e.read()
        try:
            return e.code, json.loads(body), e.headers
        except ValueError:
            return e.code, body, e.headers


def raw(request, read=True, timeout=10):
    """sends bytes on a fresh connection; returns the status line's code (0: closed)"""
    s = socket.create_connection((HOST, PORT), timeout=timeout)
    try:
        s.sendall(request)
    except OSError:
        pass
    data = b""
    try:
        while read and b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    except OSError:
        pass
    s.close()
    try:
        return int(data.split(b" ")[1])
    except (IndexError, ValueError):
        return 0


def ref_search(query, k=10, mode="hybrid", lang=None, path_like=None, exclude_tests=False):
    return sql_json("SELECT s.*, (SELECT array_to_string((string_to_array(code, E'\\n'))[1:30], E'\\n') "
                    "FROM code.snippets WHERE id = s.id) AS code "
                    "FROM code.search(query => :'q', k => :k, mode => :'m', "
                    "lang => nullif(:'l', ''), path_like => nullif(:'p', ''), exclude_tests => :e) "
                    "WITH ORDINALITY s ORDER BY ordinality",
                    q=query, k=k, m=mode, l=lang or "", p=path_like or "", e=str(exclude_tests).lower())


def same_rows(got, want, cols=COMMON):
    if len(got) != len(want):
        return False, f"{len(got)} rows, want {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        for c in cols:
            a, b = g.get(c), w.get(c)
            if isinstance(a, float) or isinstance(b, float):
                if a is None or b is None or abs(a - b) > 1e-9 * max(1, abs(b)):
                    return False, f"row {i} {c}: {a!r} != {b!r}"
            elif a != b:
                return False, f"row {i} {c}: {a!r} != {b!r}"
    return True, ""


def rss_kb():
    for line in open(f"/proc/{PID}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return -1


# ------------------------------------------------------------ the API = SQL
for params in ({"q": "decode a JSON document from a string", "k": 5, "mode": "vector"},
               {"q": "wrap text to a given width"},
               {"q": "split a shell command line into tokens", "mode": "keyword", "k": 8},
               {"q": "escape a string", "lang": "python", "path_like": "json/%", "k": 4},
               {"q": "roundtrip a document", "exclude_tests": "true", "k": 20},
               {"q": "JSONDecoder raw_decode", "mode": "hybrid", "k": 3}):
    st, body, _ = get("/api/search?" + urllib.parse.urlencode(params))
    want = ref_search(params["q"], params.get("k", 10), params.get("mode", "hybrid"), params.get("lang"),
                      params.get("path_like"), params.get("exclude_tests") == "true")
    same, why = same_rows(body.get("results", []) if st == 200 else [], want, COMMON + ["code"])
    ok(st == 200 and same and len(want) > 0, f"search {json.dumps(params)}: code.search's {len(want)} rows "
       "(+ the first 30 lines of code)", why or body)
ok(st == 200 and all(body["timings"][t] >= 0 for t in ("wait_ms", "db_ms", "total_ms"))
   and body["timings"]["total_ms"] >= body["timings"]["db_ms"], "search: timings wait_ms, db_ms <= total_ms")
st, body, h = get("/api/search?q=json&k=2")
ok(h["Content-Type"].startswith("application/json") and body["mode"] == "hybrid" and body["k"] == 2,
   "search: JSON, defaults to hybrid")
rows = sql_json("SELECT id, end_line - start_line + 1 AS n FROM code.snippets ORDER BY n DESC LIMIT 1")
big = rows[0]
st, body, _ = get(f"/api/search?q=x&k=1")
sid = ref_search("decode a JSON document from a string", 1, "vector")[0]["id"]
for ctx in (0, 4, 200):
    st, body, _ = get(f"/api/snippet/{sid}?context={ctx}")
    row = sql_json("SELECT s.code, s.signature, s.doc, s.start_line, s.end_line, s.qualified_name, "
                   "r.root || '/' || f.path AS file FROM code.snippets s JOIN code.files f ON f.id = s.file_id "
                   "JOIN code.repos r ON r.id = f.repo_id WHERE s.id = :id", id=sid)[0]
    lines = open(row["file"], encoding="utf-8").read().split("\n")
    lo = max(1, row["start_line"] - ctx)
    hi = min(len(lines), row["end_line"] + ctx)
    ok(st == 200 and body["code"] == row["code"] and body["signature"] == row["signature"]
       and body["doc"] == row["doc"] and body["context"]["text"] == "\n".join(lines[lo - 1:hi])
       and (body["context"]["start_line"], body["context"]["end_line"]) == (lo, hi)
       and "root" not in body and "sha256" not in body,
       f"snippet {sid} context {ctx}: code, signature, doc = the row; context = the file's lines {lo}..{hi}",
       (body.get("context") or {}).get("end_line") if st == 200 else body)
st, body, _ = get(f"/api/snippet/{sid}")
ok(st == 200 and body["context"]["start_line"] == max(1, body["start_line"] - 5), "snippet: context defaults to 5 lines")
for k in (1, 7):
    st, body, _ = get(f"/api/similar/{sid}?k={k}")
    want = sql_json("SELECT m.* FROM code.more_like_this(snippet_id => :id, k => :k) WITH ORDINALITY m "
                    "ORDER BY ordinality", id=sid, k=k)
    same, why = same_rows(body.get("results", []) if st == 200 else [], want)
    ok(st == 200 and same, f"similar {sid} k {k}: code.more_like_this's rows", why)
st, body, _ = get("/api/repos")
want = sql_json("SELECT r.id, r.name, r.root, (SELECT count(*) FROM code.files f WHERE f.repo_id = r.id) AS files, "
                "(SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id "
                "WHERE f.repo_id = r.id) AS snippets FROM code.repos r ORDER BY name, id")
langs = sql_json("SELECT language, count(*) AS files FROM code.files WHERE language IS NOT NULL "
                 "GROUP BY 1 ORDER BY 1")
ok(st == 200 and body["repos"] == want and body["languages"] == langs, "repos: code.repos with counts, languages")
st, body, _ = get("/healthz")
ok(st == 200 and body["status"] == "ok", "healthz: ok")

# ------------------------------------------------------------ bad parameters
def err(path, status, sqlstate, words, desc):
    st, body, _ = get(path)
    e = body.get("error", {}) if isinstance(body, dict) else {}
    ok(st == status and e.get("status") == status and e.get("sqlstate") == sqlstate
       and all(w in e.get("message", "") for w in words), desc, f"{st} {body!r}"[:300])


err("/api/search", 400, "22023", ["missing", "q"], "search without q: 400, says q is missing")
err("/api/search?q=x&k=abc", 400, "22023", ["k", "integer"], "k=abc: 400 22023")
err("/api/search?q=x&k=0", 400, "22023", ["k", "between"], "k=0: 400")
err("/api/search?q=x&k=101", 400, "22023", ["k", "between"], "k=101: 400")
err("/api/search?q=x&k=1e3", 400, "22023", ["k"], "k=1e3: 400")
err("/api/search?q=x&k=99999999999999999999999", 400, "22023", ["k"], "k overflowing 64 bits: 400")
err("/api/search?q=x&mode=fuzzy", 400, "22023", ["fuzzy"], "mode=fuzzy: code.search's 22023, 400")
err("/api/search?q=x&exclude_tests=maybe", 400, "22023", ["exclude_tests"], "exclude_tests=maybe: 400")
err("/api/search?q=%FF%FE", 400, "22021", ["UTF-8"], "q of invalid UTF-8: 400 22021")
err("/api/search?q=a%00b", 400, "22021", ["UTF-8"], "q with a NUL (%00): 400 22021, not a cut query")
err("/api/snippet/1%00", 400, None, ["NUL"], "a NUL in the path: 400")
err("/api/search?q=%C0%AF", 400, "22021", ["UTF-8"], "q with an overlong UTF-8 form: 400 22021")
err("/api/search?q=%ED%A0%80", 400, "22021", ["UTF-8"], "q with a UTF-16 surrogate: 400 22021")
err("/api/search?q=x&lang=%FF", 400, "22021", ["lang"], "lang of invalid UTF-8: 400")
err("/api/search?q=" + "a" * 9000, 400, "22001", ["8192"], "a 9,000-byte q: 400 22001, names the limit")
err("/api/snippet/abc", 400, "22023", ["id"], "snippet/abc: 400")
err("/api/snippet/-1", 400, "22023", ["id"], "snippet/-1: 400")
err("/api/snippet/", 400, "22023", ["id"], "snippet/ without id: 400")
err("/api/snippet/99999999", 404, None, ["99999999"], "an unknown snippet: 404")
err(f"/api/snippet/{sid}?context=1000", 400, "22023", ["context"], "context=1000: 400")
err("/api/similar/99999999", 404, "22023", ["99999999"], "similar of an unknown snippet: 404")
err(f"/api/similar/{sid}?k=-3", 400, "22023", ["k"], "similar k=-3: 400")
err("/api/nothing", 404, None, ["not found"], "an unknown API path: 404 JSON")
st, body, h = get("/api/search?q=x", method="POST")
ok(st == 405 and "GET" in h.get("Allow", ""), "POST /api/search: 405 with Allow")
st, body, _ = get("/api/search?q=a&q=b&k=1")
ok(st == 200, "a repeated parameter: the first is used")
code = raw(b"GET /api/search?q=" + b"a" * (1024 * 1024) + b" HTTP/1.1\r\nHost: x\r\n\r\n")
ok(code in (414, 431, 413, 0), f"a 1 MB URL: refused by the server ({code})")
code = raw(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * (1024 * 1024) + b"\r\n\r\n")
ok(code in (431, 413, 400, 0), f"a 1 MB header: refused ({code})")
code = raw(b"BLAH\r\n\r\n")
ok(code in (400, 0), f"a malformed request line: 400 ({code})")

# ------------------------------------------------------------ SQL injection
before = sql_json("SELECT count(*) AS n, md5(string_agg(id::text || code, '' ORDER BY id)) AS h FROM code.snippets")
for q in ("'; DROP TABLE code.snippets; --", "x') OR 1=1; --", "$1; DELETE FROM code.files",
          "\\'; SELECT pg_sleep(10); --"):
    st, body, _ = get("/api/search?" + urllib.parse.urlencode({"q": q, "mode": "keyword", "k": 3}))
    ok(st == 200 and body["query"] == q, f"injection in q is only a query: {q!r}")
st, body, _ = get("/api/search?" + urllib.parse.urlencode({"q": "json", "lang": "python' OR '1'='1"}))
ok(st == 200 and body["results"] == [], "injection in lang matches no language")
st, body, _ = get("/api/search?" + urllib.parse.urlencode({"q": "json", "path_like": "%' OR 1=1 --"}))
ok(st == 200 and body["results"] == [], "injection in path_like matches no path")
st, body, _ = get("/api/snippet/1%3B%20DROP%20TABLE%20code.snippets")
ok(st == 400, "injection in a snippet id: 400")
after = sql_json("SELECT count(*) AS n, md5(string_agg(id::text || code, '' ORDER BY id)) AS h FROM code.snippets")
ok(before == after, "code.snippets unchanged")

# ------------------------------------------------------------ the page's files only
for path, want in (("/", 200), ("/index.html", 200), ("/app.js", 200), ("/style.css", 200),
                   ("/hljs/highlight.min.js", 200), ("/../../../etc/passwd", 404),
                   ("/%2e%2e/%2e%2e/etc/passwd", 404), ("/hljs/..%2f..%2f..%2fetc%2fpasswd", 404),
                   ("/hljs/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", 404), ("/static/index.html", 404),
                   ("/index.html%00.js", 400), ("/app.js/", 404), ("//etc/passwd", 404),
                   ("/.git/config", 404), ("/serve.h", 404)):
    code = raw(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    ok(code == want, f"GET {path}: {want}", code)
st, body, h = get("/", raw=True)
ok(st == 200 and b"<title>codevec search</title>" in body and h["Content-Type"].startswith("text/html")
   and "default-src 'self'" in h.get("Content-Security-Policy", ""), "the page: HTML with a self-only CSP")

# ------------------------------------------------------------ slow clients
slow = []
for i in range(40):
    s = socket.create_connection((HOST, PORT))
    s.sendall(b"GET /api/search?q=slow HTTP/1.1\r\nHost: x\r\n")	# never finished
    slow.append(s)
t0 = time.time()
st, body, _ = get("/api/search?q=json&mode=keyword&k=1")
ok(st == 200 and time.time() - t0 < 2, "40 clients that never finish their request do not block others")
time.sleep(3.5)		# run.sh starts this server with --idle-timeout 2
closed = 0
for s in slow:
    s.settimeout(2)
    try:
        closed += s.recv(100) == b""
    except OSError:
        closed += 1
    s.close()
ok(closed == 40, f"the idle timeout closed them ({closed} of 40)")
s = socket.create_connection((HOST, PORT))
s.settimeout(10)
t0 = time.time()
try:
    for ch in b"GET /healthz HTTP/1.1\r\nHo":
        s.send(bytes([ch]))
        time.sleep(0.05)
    data = s.recv(100)
except OSError:
    data = b""
s.close()
ok(True, f"a byte-at-a-time client: handled ({len(data)} bytes back)")

# ------------------------------------------------------------ 1,000 concurrent requests
rss0 = rss_kb()


def one(i):
    q = urllib.parse.urlencode({"q": f"decode json {i % 17}", "mode": "keyword", "k": 5})
    try:
        st, body, _ = get("/api/search?" + q)
        return st, isinstance(body, dict) and ("results" in body or "error" in body)
    except Exception as e:		# a refused or reset connection
        return repr(e)[:60], False


t0 = time.time()
with concurrent.futures.ThreadPoolExecutor(max_workers=1000) as ex:
    res = list(ex.map(one, range(1000)))
dt = time.time() - t0
codes = {}
for st, _ in res:
    codes[st] = codes.get(st, 0) + 1
ok(all(j for _, j in res) and codes.get(200, 0) >= 900,
   f"1,000 concurrent requests in {dt:.1f} s: every answer is JSON ({codes})", codes)
rss1 = rss_kb()
ok(0 < rss1 < 50 * 1024, f"memory bounded: RSS {rss0 / 1024:.1f} MB before, {rss1 / 1024:.1f} MB after (< 50 MB)")
st, body, _ = get("/healthz")
ok(st == 200, "still healthy afterwards")
