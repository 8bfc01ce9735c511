"""test/serve/common.py -- what the three checkers (api_check.py, mcp_check.py,
page_check.py) share: TAP-like result lines, the SQL reference read with psql
(PG* variables name the test database), and code.search's common columns."""
import json
import subprocess

COMMON = ["id", "repo", "path", "language", "kind", "symbol", "qualified_name", "start_line",
          "end_line", "preview", "score", "vector_rank", "keyword_rank", "distance", "keyword_score"]


def ok(cond, desc, detail=""):
    """print "ok - desc" or "not ok - desc" with up to 8 lines of detail"""
    print(("ok - " if cond else "not ok - ") + desc, flush=True)
    if not cond and detail:
        for line in str(detail).splitlines()[:8]:
            print("#   " + line[:300], flush=True)


def sql_json(sql, **vars):
    """rows of sql (psql variables :'name' from vars) as a list of dicts"""
    args = ["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1"]
    for k, v in vars.items():
        args += ["-v", f"{k}={v}"]
    out = subprocess.run(args, input=f"SELECT coalesce(json_agg(t), '[]') FROM ({sql}) t;\n",
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)
