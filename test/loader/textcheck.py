#!/usr/bin/env python3
"""textcheck.py -- check codevec-load's text against Python's reading of the files.

    textcheck.py ROOT SNIPPETS.jsonl [--log STDERR-OF-LOADER-V] [--all]
                 [--sample N] [--seed S]

SNIPPETS holds one JSON object per line with path (relative to ROOT),
start_line, end_line and code: the loader's --jsonl output, or rows of
code.snippets exported from the database.  For each (or a sample of N):
the file's bytes are decoded by textref.decode() (Python's codecs and
tokenize), and code must be the exact text of the decoded file that starts
on start_line and ends on end_line.

--log is the loader's -v stderr: every "skipped PATH: REASON" with reason
encoding, binary or empty must be what textref says of the file, and every
"PATH: N invalid UTF-8 sequences replaced" must count what Python's
errors='replace' replaces.  With --all, every file under ROOT with a
grammar's suffix that the log does not name as skipped must decode ("ok"),
and one that textref skips must be named with that reason.

Prints "# ..." lines and exits 1 on any mismatch.
"""
import argparse
import json
import os
import random
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from textref import decode  # noqa: E402

SUFFIXES = (".c", ".h", ".cc", ".cpp", ".cxx", ".c++", ".C", ".hh", ".hpp", ".hxx",
            ".h++", ".ipp", ".py", ".pyi", ".js", ".mjs", ".cjs", ".jsx", ".ts", ".mts",
            ".cts", ".tsx", ".go", ".rs", ".java")
SKIP = re.compile(r"^codevec-load: skipped (.*): ([a-z0-9-]+)(?: \(.*\))?$")
REPLACED = re.compile(r"^codevec-load: (.*): (\d+) invalid UTF-8 sequences? replaced by U\+FFFD$")


def is_python(path):
    return path.endswith((".py", ".pyi"))


def has_grammar(name):
    base = os.path.basename(name)
    dot = base.rfind(".")
    return dot > 0 and base[dot:] in SUFFIXES


class Checker:
    def __init__(self, root):
        self.root = root
        self.cache = {}
        self.bad = 0

    def fail(self, msg):
        self.bad += 1
        if self.bad <= 20:
            print("#   " + msg)

    def reference(self, path):
        if path not in self.cache:
            with open(os.path.join(self.root, path), "rb") as f:
                data = f.read()
            status, text = decode(data, is_python(path))
            self.cache = {path: (data, status, text)}   # one file at a time
        return self.cache[path]

    def snippet(self, d):
        path = d["path"]
        _, status, text = self.reference(path)
        if status != "ok":
            self.fail("%s: loaded, but Python's reading says %s" % (path, status))
            return
        code = d["code"]
        # offsets of line starts (the loader counts lines by \n, as here)
        line = d["start_line"]
        pos = 0
        for _ in range(line - 1):
            pos = text.find("\n", pos) + 1
            if pos == 0:
                self.fail("%s: no line %d" % (path, line))
                return
        nxt = text.find("\n", pos)
        nxt = len(text) if nxt < 0 else nxt + 1
        at = text.find(code, pos, nxt + len(code)) if code else pos
        if at < 0 or at >= nxt:
            self.fail("%s:%d: code %r is not the text on that line" % (path, line, code[:60]))
            return
        end = text.count("\n", 0, at + len(code)) + 1 - (1 if code.endswith("\n") else 0)
        if end != d["end_line"]:
            self.fail("%s:%d: code ends on line %d, end_line says %d" % (path, line, end, d["end_line"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("snippets")
    ap.add_argument("--log")
    ap.add_argument("--all", action="store_true")
    ap.add_argument("--sample", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    c = Checker(a.root)

    with open(a.snippets, encoding="utf-8") as f:       # strict: the text is UTF-8
        rows = [json.loads(line) for line in f if line.strip()]
    if a.sample and len(rows) > a.sample:
        rows = random.Random(a.seed).sample(rows, a.sample)
    rows.sort(key=lambda d: (d["path"], d["start_line"]))
    for d in rows:
        c.snippet(d)
    print("# %d snippets checked against Python's reading of their files" % len(rows))

    if a.log:
        skipped = {}
        replaced = {}
        with open(a.log, encoding="utf-8", errors="replace") as f:
            for line in f:
                line = line.rstrip("\n").split("\r")[-1].replace("\x1b[K", "")
                m = SKIP.match(line)
                if m:
                    skipped[m.group(1)] = m.group(2)
                m = REPLACED.match(line)
                if m:
                    replaced[m.group(1)] = int(m.group(2))
        nskip = nrep = 0
        for path, reason in sorted(skipped.items()):
            if reason in ("encoding", "binary", "empty"):
                _, status, _ = c.reference(path)
                nskip += 1
                if status != reason:
                    c.fail("%s: skipped as %s, Python's reading says %s" % (path, reason, status))
        for path, n in sorted(replaced.items()):
            data, status, text = c.reference(path)
            want = text.count("\ufffd") - data.count("\ufffd".encode()) if status == "ok" else -1
            nrep += 1
            if n != want:
                c.fail("%s: %d replacements reported, Python's errors='replace' makes %d" % (path, n, want))
        print("# %d encoding/binary/empty skips and %d repaired files checked" % (nskip, nrep))
        if a.all:
            nall = 0
            for dirpath, dirnames, filenames in os.walk(a.root):
                dirnames[:] = [x for x in dirnames if x not in (".git", ".hg", ".svn")
                               and not os.path.islink(os.path.join(dirpath, x))]
                for name in filenames:
                    full = os.path.join(dirpath, name)
                    rel = os.path.relpath(full, a.root)
                    if not has_grammar(name) or os.path.islink(full) or not os.path.isfile(full):
                        continue
                    if rel in skipped:
                        continue        # checked above, or a policy skip (too-large ...)
                    nall += 1
                    _, status, _ = c.reference(rel)
                    if status != "ok":
                        c.fail("%s: loaded without a skip, Python's reading says %s" % (rel, status))
            print("# %d files the loader kept decode in Python too" % nall)
    print("# %d mismatches" % c.bad)
    sys.exit(1 if c.bad else 0)


if __name__ == "__main__":
    main()
