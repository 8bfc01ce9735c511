#!/usr/bin/env python3
"""test/serve/mcp_check.py -- codevec-serve's MCP server against the official
MCP Python SDK (PyPI `mcp`) as the client, over stdio and Streamable HTTP, in
both protocol eras (mode="auto": server/discover, 2026-07-28; mode="legacy":
the initialize handshake).  Every tool result is compared with the SQL
function's rows, read with psql (an independent reference); get_snippet's
context with the file read here.  Then raw JSON-RPC messages for the error
codes the SDK never sends.

usage: mcp_check.py SERVE_BINARY HTTP_BASE_URL
PG* variables name the test database.  Prints "ok - ..." / "not ok - ..."
lines (run.sh numbers and counts them).
"""
import asyncio
import json
import os
import subprocess
import sys
import urllib.request
import urllib.error

from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.shared.exceptions import MCPError
from common import COMMON, ok, sql_json

SERVE, BASE = sys.argv[1], sys.argv[2]




def ref_search(query, k=10, mode="hybrid", lang=None, path_like=None, exclude_tests=False):
    return sql_json("SELECT s.* FROM code.search(query => :'q', k => :k, mode => :'m', "
                    "lang => nullif(:'l', ''), path_like => nullif(:'p', ''), exclude_tests => :e) "
                    "WITH ORDINALITY s ORDER BY ordinality",
                    q=query, k=k, m=mode, l=lang or "", p=path_like or "", e=str(exclude_tests).lower())


def same_rows(got, want):
    """the common columns equal, floats to 1e-9 (both sides print shortest round-trip)"""
    if len(got) != len(want):
        return False, f"{len(got)} rows, want {len(want)}"
    for i, (g, w) in enumerate(zip(got, want)):
        for c in COMMON:
            a, b = g.get(c), w.get(c)
            if isinstance(a, float) or isinstance(b, float):
                if a is None or b is None or abs(a - b) > 1e-9 * max(1, abs(b)):
                    return False, f"row {i} {c}: {a!r} != {b!r}"
            elif a != b:
                return False, f"row {i} {c}: {a!r} != {b!r}"
    return True, ""


async def check_client(label, server, mode, want_version):
    async with Client(server, mode=mode, read_timeout_seconds=60) as c:
        ok(c.protocol_version == want_version,
           f"{label}: negotiated protocol {want_version}", c.protocol_version)
        tools = (await c.list_tools()).tools
        names = sorted(t.name for t in tools)
        ok(names == ["get_snippet", "list_repos", "search_code", "similar_code"],
           f"{label}: tools/list names the four tools", names)
        ok(all(t.input_schema.get("type") == "object" and t.output_schema and
               t.output_schema.get("type") == "object" for t in tools),
           f"{label}: every tool has an input and an output JSON Schema")
        search = next(t for t in tools if t.name == "search_code")
        ok(search.input_schema.get("required") == ["query"] and
           search.input_schema["properties"]["mode"]["enum"] == ["hybrid", "vector", "keyword"],
           f"{label}: search_code's schema requires query, enumerates the modes")

        for args in ({"query": "decode a JSON document from a string", "k": 5, "mode": "vector"},
                     {"query": "wrap text to a given width"},
                     {"query": "split shell command line", "k": 7, "mode": "keyword", "lang": "python",
                      "path_like": "pkg/%"},
                     {"query": "json", "mode": "hybrid", "exclude_tests": True, "k": 20}):
            r = await c.call_tool("search_code", args)
            want = ref_search(args["query"], args.get("k", 10), args.get("mode", "hybrid"),
                              args.get("lang"), args.get("path_like"), args.get("exclude_tests", False))
            same, why = same_rows((r.structured_content or {}).get("results", []), want)
            ok(not r.is_error and same and len(want) > 0,
               f"{label}: search_code {json.dumps(args)} = code.search's {len(want)} rows",
               r.content[0].text if r.is_error else why)
            if r.is_error:
                continue
            ok(not r.is_error and json.loads(r.content[0].text) == r.structured_content,
               f"{label}: search_code's text content is its structured content as JSON")

        sid = ref_search("decode a JSON document from a string", 1, "vector")[0]["id"]
        r = await c.call_tool("get_snippet", {"id": sid, "context": 3})
        s = r.structured_content or {}
        row = sql_json("SELECT s.code, s.start_line, s.end_line, r.root || '/' || f.path AS file "
                       "FROM code.snippets s JOIN code.files f ON f.id = s.file_id "
                       "JOIN code.repos r ON r.id = f.repo_id WHERE s.id = :id", id=sid)[0]
        lines = open(row["file"], encoding="utf-8").read().split("\n")
        lo = max(1, row["start_line"] - 3)
        want_ctx = "\n".join(lines[lo - 1:row["end_line"] + 3])
        ok(not r.is_error and s.get("code") == row["code"] and s.get("start_line") == row["start_line"],
           f"{label}: get_snippet {sid}: the snippet's code and lines")
        ok((s.get("context") or {}).get("text") == want_ctx and s["context"]["start_line"] == lo,
           f"{label}: get_snippet context 3: the file's lines {lo}..{row['end_line'] + 3}",
           repr((s.get("context") or {}).get("text", ""))[:200] + "\n" + repr(want_ctx)[:200])

        r = await c.call_tool("similar_code", {"id": sid, "k": 4})
        want = sql_json("SELECT m.* FROM code.more_like_this(snippet_id => :id, k => 4) WITH ORDINALITY m "
                        "ORDER BY ordinality", id=sid)
        same, why = same_rows((r.structured_content or {}).get("results", []), want)
        ok(not r.is_error and same and len(want) == 4, f"{label}: similar_code = code.more_like_this", why)

        r = await c.call_tool("list_repos", {})
        want = sql_json("SELECT r.id, r.name, r.root, (SELECT count(*) FROM code.files f WHERE f.repo_id = r.id) AS files, "
                        "(SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id "
                        "WHERE f.repo_id = r.id) AS snippets FROM code.repos r ORDER BY name, id")
        ok(not r.is_error and (r.structured_content or {}).get("repos") == want,
           f"{label}: list_repos = code.repos with counts", r.structured_content)

        # tool errors: the model sees them (isError), the session goes on
        r = await c.call_tool("search_code", {"query": "x", "mode": "fuzzy"})
        ok(r.is_error and "22023" in r.content[0].text and "fuzzy" in r.content[0].text,
           f"{label}: an unknown mode is a tool error naming it and SQLSTATE 22023", r.content)
        r = await c.call_tool("search_code", {"k": 3})
        ok(r.is_error and "query" in r.content[0].text, f"{label}: a missing query is a tool error")
        r = await c.call_tool("get_snippet", {"id": 987654321})
        ok(r.is_error and "no snippet" in r.content[0].text, f"{label}: an unknown snippet id is a tool error")
        r = await c.call_tool("search_code", {"query": "x", "k": "many"})
        ok(r.is_error and "integer" in r.content[0].text, f"{label}: k of the wrong type is a tool error")
        r = await c.call_tool("search_code", {"query": "x", "k": 100000})
        ok(r.is_error and "between" in r.content[0].text, f"{label}: k out of range is a tool error")
        try:
            await c.call_tool("drop_tables", {})
            ok(False, f"{label}: an unknown tool is a JSON-RPC error")
        except MCPError as e:
            ok(e.code == -32602, f"{label}: an unknown tool is JSON-RPC error -32602", e.code)
        r = await c.call_tool("search_code", {"query": "decode", "k": 2, "mode": "keyword"})
        ok(not r.is_error and len(r.structured_content["results"]) == 2, f"{label}: still answering after errors")


def raw_http(body, headers=None, method="POST"):
    h = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    h.update(headers or {})
    data = body if isinstance(body, bytes) else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(BASE + "/mcp", data=data, headers=h, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read()
            return resp.status, json.loads(text) if text else None
    except urllib.error.HTTPError as e:
        text = e.read()
        try:
            return e.code, json.loads(text)
        except ValueError:
            return e.code, None


def raw_checks():
    modern_meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                   "io.modelcontextprotocol/clientCapabilities": {}}
    st, r = raw_http(b"{not json")
    ok(st == 400 and r["error"]["code"] == -32700 and r["id"] is None, "http: malformed JSON is -32700")
    st, r = raw_http(b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":"\xff"}}')
    ok(r and r["error"]["code"] == -32700, "http: invalid UTF-8 is -32700")
    st, r = raw_http([{"jsonrpc": "2.0", "id": 1, "method": "ping"}])
    ok(st == 400 and r["error"]["code"] == -32600, "http: a batch is -32600")
    st, r = raw_http({"jsonrpc": "1.0", "id": 1, "method": "ping"})
    ok(r["error"]["code"] == -32600, "http: jsonrpc 1.0 is -32600")
    st, r = raw_http({"jsonrpc": "2.0", "id": {"a": 1}, "method": "ping"})
    ok(r["error"]["code"] == -32600, "http: an object id is -32600")
    st, r = raw_http({"jsonrpc": "2.0", "id": 7, "method": "resources/list"})
    ok(st == 404 and r["error"]["code"] == -32601 and r["id"] == 7, "http: an unknown method is -32601 (HTTP 404)")
    st, r = raw_http({"jsonrpc": "2.0", "method": "notifications/initialized"})
    ok(st == 202 and r is None, "http: a notification is answered 202 without a body")
    st, r = raw_http({"jsonrpc": "2.0", "id": 2, "method": "initialize",
                      "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                 "clientInfo": {"name": "t", "version": "0"}}})
    ok(st == 200 and r["result"]["protocolVersion"] == "2025-06-18" and "tools" in r["result"]["capabilities"],
       "http: initialize keeps an older revision the server speaks (2025-06-18)")
    st, r = raw_http({"jsonrpc": "2.0", "id": 3, "method": "initialize",
                      "params": {"protocolVersion": "1999-01-01", "capabilities": {}}})
    ok(r["result"]["protocolVersion"] == "2025-11-25", "http: initialize offers 2025-11-25 for an unknown revision")
    st, r = raw_http({"jsonrpc": "2.0", "id": 4, "method": "tools/list",
                      "params": {"_meta": dict(modern_meta, **{"io.modelcontextprotocol/protocolVersion": "2030-01-01"})}},
                     {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"})
    ok(st == 400 and r["error"]["code"] == -32020, "http: header and _meta versions differ: -32020", r)
    st, r = raw_http({"jsonrpc": "2.0", "id": 5, "method": "tools/list", "params": {"_meta": modern_meta}},
                     {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call"})
    ok(st == 400 and r["error"]["code"] == -32020, "http: Mcp-Method differs from the method: -32020")
    st, r = raw_http({"jsonrpc": "2.0", "id": 6, "method": "tools/call",
                      "params": {"_meta": modern_meta, "name": "list_repos", "arguments": {}}},
                     {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "search_code"})
    ok(st == 400 and r["error"]["code"] == -32020, "http: Mcp-Name differs from the tool: -32020")
    st, r = raw_http({"jsonrpc": "2.0", "id": 6, "method": "tools/call",
                      "params": {"_meta": modern_meta, "name": "list_repos", "arguments": {}}},
                     {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call", "Mcp-Name": "list_repos"})
    ok(st == 200 and r["result"]["resultType"] == "complete" and r["result"]["isError"] is False,
       "http: a 2026-07-28 request with matching headers is answered, resultType complete")
    st, r = raw_http({"jsonrpc": "2.0", "id": 8, "method": "tools/list",
                      "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2030-01-01",
                                           "io.modelcontextprotocol/clientCapabilities": {}}}},
                     {"MCP-Protocol-Version": "2030-01-01", "Mcp-Method": "tools/list"})
    ok(r["error"]["code"] == -32022 and r["error"]["data"]["supported"] == ["2026-07-28"]
       and r["error"]["data"]["requested"] == "2030-01-01", "http: an unknown envelope version is -32022 with the supported list")
    st, r = raw_http({"jsonrpc": "2.0", "id": 9, "method": "ping"}, {"MCP-Protocol-Version": "banana"})
    ok(st == 400 and r["error"]["code"] == -32600, "http: an unknown MCP-Protocol-Version header is 400")
    st, r = raw_http(None, method="GET")
    ok(st == 405, "http: GET /mcp is 405 (no SSE stream offered)")
    st, r = raw_http({"jsonrpc": "2.0", "id": 10, "method": "ping"}, {"Origin": "http://evil.example"})
    ok(st == 403, "http: a foreign Origin is 403 (DNS rebinding)")
    st, r = raw_http({"jsonrpc": "2.0", "id": 11, "method": "ping"}, {"Content-Type": "text/plain"})
    ok(st == 415, "http: a non-JSON Content-Type is 415")
    st, r = raw_http(b'{"jsonrpc":"2.0","id":12,"method":"ping","params":{"pad":"' + b"x" * (1100 * 1024) + b'"}}')
    ok(st == 413, "http: a 1.1 MB message is 413")

    # stdio: the same codes, one message per line, nothing else on stdout
    msgs = [b"{not json",
            b'{"jsonrpc":"2.0","method":"notifications/initialized"}',
            b'{"jsonrpc":"2.0","id":1,"method":"tools/unknown"}',
            b'{"jsonrpc":"2.0","id":2,"method":"ping"}',
            b'{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"search_code","arguments":{"query":"\\u0000x"}}}',
            b'{"jsonrpc":"2.0","id":4,"method":"ping","params":{"pad":"' + b"y" * (1100 * 1024) + b'"}}',
            b'{"jsonrpc":"2.0","id":6,"method":"tools/list","params":{"_meta":{'
            b'"io.modelcontextprotocol/protocolVersion":"2030-01-01","io.modelcontextprotocol/clientCapabilities":{}}}}',
            b'{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"search_code","arguments":'
            b'{"query":"x\'; DROP TABLE code.snippets; --","k":3,"mode":"keyword"}}}']
    p = subprocess.run([SERVE, "--mcp-stdio"], input=b"\n".join(msgs) + b"\n", capture_output=True, timeout=60)
    out = [json.loads(l) for l in p.stdout.decode().splitlines()]
    ok(p.returncode == 0 and len(out) == 7, "stdio: one answer per request, none for the notification", out)
    if len(out) == 7:
        ok(out[0]["error"]["code"] == -32700, "stdio: malformed JSON is -32700")
        ok(out[1]["error"]["code"] == -32601 and out[1]["id"] == 1, "stdio: an unknown method is -32601")
        ok(out[2]["result"]["resultType"] == "complete" and out[2]["id"] == 2, "stdio: ping answers")
        ok(out[3].get("error", {}).get("code") == -32602 and "NUL" in out[3]["error"]["message"],
           "stdio: a NUL (\\u0000) in a string is -32602, not a silently cut query", out[3])
        ok(out[4]["error"]["code"] == -32700 and "1 MB" in out[4]["error"]["message"], "stdio: a 1.1 MB line is -32700")
        ok(out[5]["error"]["code"] == -32022 and out[5]["error"]["data"]["requested"] == "2030-01-01",
           "stdio: an unknown envelope version is -32022")
        ok(out[6]["result"]["isError"] is False, "stdio: an SQL injection attempt is just a query")


async def main():
    stdio = StdioServerParameters(command=SERVE, args=["--mcp-stdio"], env=dict(os.environ))
    await check_client("stdio modern", stdio, "auto", "2026-07-28")
    await check_client("stdio legacy", stdio, "legacy", "2025-11-25")
    await check_client("http modern", BASE + "/mcp", "auto", "2026-07-28")
    await check_client("http legacy", BASE + "/mcp", "legacy", "2025-11-25")
    raw_checks()


asyncio.run(main())
