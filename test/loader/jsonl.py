#!/usr/bin/env python3
"""jsonl.py FILE FILTER FIELD... -- print fields of matching JSON lines.

FILTER is "-" (every line) or "key=value[,key=value...]" (string equality).
Fields are printed tab-separated, one line per match; null prints as None and
newlines inside values as a literal backslash-n, so each match is one line.
"""
import json
import sys


def main():
    path, flt, fields = sys.argv[1], sys.argv[2], sys.argv[3:]
    conds = []
    if flt != "-":
        for part in flt.split(","):
            k, v = part.split("=", 1)
            conds.append((k, v))
    with open(path, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            if all(str(d.get(k)) == v for k, v in conds):
                out = []
                for name in fields:
                    v = d.get(name)
                    out.append("None" if v is None else str(v).replace("\n", "\\n"))
                print("\t".join(out))


if __name__ == "__main__":
    main()
