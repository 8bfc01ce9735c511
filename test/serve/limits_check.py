"""test/serve/limits_check.py BASE -- codevec-serve's limits (issue 16, round
2), against a server started with --request-timeout 1 --connection-time 2:

  - a URL over 16,384 bytes is 414 and headers over 16,384 bytes are 431,
    with the API's JSON error body (not libmicrohttpd's HTML), up to the
    library's own 64 kB buffer; a URL just under the limit is served;
  - the request deadline: a vector search of an 8 kB query (BERT over 256
    tokens: far longer than 1 ms anywhere) is 504 with SQLSTATE 57014 and
    says the deadline was reached;
  - the connection time: a client that sends a header line every 0.3 s (so
    never idle) is disconnected after about 2 s.
Prints "ok - ..." / "not ok - ..." lines (common.ok)."""
import json
import socket
import sys
import time
import urllib.parse

from common import ok

BASE = sys.argv[1]
HOST, PORT = urllib.parse.urlsplit(BASE).hostname, urllib.parse.urlsplit(BASE).port


def raw(data, timeout=10):
    """sends data on a new connection; returns (status, body bytes)"""
    s = socket.create_connection((HOST, PORT), timeout=timeout)
    buf = b""
    try:
        s.sendall(data)
        while True:
            b = s.recv(65536)
            if not b:
                break
            buf += b
    except OSError:
        pass
    finally:
        s.close()
    head, _, body = buf.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ")[1])
    except (IndexError, ValueError):
        status = 0
    return status, body


def json_error(body):
    try:
        return json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return None


def get(path, headers=b""):
    return raw(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers + b"\r\n")


for n in (16500, 60000):
    st, body = get(b"/api/search?q=" + b"a" * n)
    e = json_error(body)
    ok(st == 414 and e and e["status"] == 414 and "URL" in e["message"],
       f"a URL of {n} bytes: 414 with a JSON error", body[:200])
for n in (16500, 60000):
    st, body = get(b"/api/search?q=a", b"X-Big: " + b"b" * n + b"\r\n")
    e = json_error(body)
    ok(st == 431 and e and e["status"] == 431 and "headers" in e["message"],
       f"headers of {n} bytes: 431 with a JSON error", body[:200])
st, body = get(b"/healthz", b"".join(b"X-H%d: %s\r\n" % (i, b"v" * 90) for i in range(100)))
ok(st != 431, f"100 headers of 100 bytes (10 kB): not 431 ({st})")
st, body = get(b"/api/search?mode=keyword&q=" + b"a" * 8000)
ok(st != 414, f"a URL of 8 kB: not 414 ({st})")

q = urllib.parse.quote(" ".join(["parse the message header"] * 330))[:8000].rsplit("%", 1)[0]
st, body = get(b"/api/search?mode=vector&q=" + q.encode())
e = json_error(body)
ok(st == 504 and e and e["sqlstate"] == "57014" and "deadline" in e["message"],
   "--request-timeout 1: a long vector search is 504, SQLSTATE 57014, the deadline named", body[:300])

s = socket.create_connection((HOST, PORT), timeout=10)
s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
t0 = time.time()
closed = None
for i in range(40):
    time.sleep(0.3)
    try:
        s.sendall(b"X-Trickle: %d\r\n" % i)
        s.settimeout(0.01)
        if s.recv(1) == b"":
            closed = time.time() - t0
            break
    except socket.timeout:
        pass
    except OSError:
        closed = time.time() - t0
        break
s.close()
ok(closed is not None and 1.5 <= closed <= 6,
   f"--connection-time 2: a client trickling a header every 0.3 s is closed after {closed and round(closed, 1)} s")
