#!/usr/bin/env python3
"""Choose the 200 real strings the shipped model's reference test embeds.

    python3 models/make-strings.py [--corpus /tmp/codevec-quality/corpus] \
        [--out models/reference-strings.jsonl]

The strings come from the retrieval benchmark's data (bench/quality), with
a fixed seed, so that they are what the model is used for:

  * 104 code snippets, 13 per language (c, cpp, go, java, javascript,
    python, rust, typescript): the function a benchmark query answers,
    cut at a random length from its first line (2-6, 10-30 or 60-150
    lines, at most 8,000 characters), so that about a third run past the
    256-token budget and exercise truncation;
  * 16 snippets of 3-20 lines around a line with non-ASCII characters
    (accents, CJK, symbols in strings and comments), 2 per language
    where the language's benchmark code has them;
  * 56 benchmark queries (bench/quality/queries.tsv.gz, first sentences of
    docstrings), 7 per language;
  * 24 hand-written questions (bench/quality/handwritten/questions.tsv).

The code comes from the benchmark corpus that bench/quality/build-set.py
unpacks (CODEVEC_QUALITY_CACHE, default /tmp/codevec-quality); the strings
are committed, so neither the test nor make-reference.py needs the corpus.
Each output line is {"text", "kind", "language", "source"}; test
programs read "text" only.  Python's standard library only.
"""
import argparse
import csv
import gzip
import io
import json
import os
import random
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LANGS = ["c", "cpp", "go", "java", "javascript", "python", "rust", "typescript"]
EXT = {"c": (".c", ".h"), "cpp": (".cc", ".cpp", ".hpp", ".h", ".cxx"), "go": (".go",),
       "java": (".java",), "javascript": (".js", ".mjs"), "python": (".py",),
       "rust": (".rs",), "typescript": (".ts", ".tsx")}


def read_lines(path):
    """Return the lines of a UTF-8 file, or None when it is not UTF-8."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().split("\n")
    except (OSError, UnicodeDecodeError):
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    cache = os.environ.get("CODEVEC_QUALITY_CACHE", "/tmp/codevec-quality")
    ap.add_argument("--corpus", default=os.path.join(cache, "corpus"))
    ap.add_argument("--out", default=os.path.join(HERE, "reference-strings.jsonl"))
    ap.add_argument("--seed", type=int, default=20261203)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    with gzip.open(os.path.join(ROOT, "bench/quality/queries.tsv.gz"), "rt", encoding="utf-8") as f:
        queries = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    with open(os.path.join(ROOT, "bench/quality/handwritten/questions.tsv"), encoding="utf-8") as f:
        handwritten = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    by_lang = {l: [q for q in queries if q["language"] == l] for l in LANGS}
    for l in LANGS:
        rng.shuffle(by_lang[l])

    out = []
    # code: the answering function of benchmark queries, cut at random lengths
    for l in LANGS:
        n = 0
        for q in by_lang[l]:
            if n == 13:
                break
            lines = read_lines(os.path.join(args.corpus, q["repo"], q["path"]))
            if lines is None:
                continue
            start = int(q["start_line"]) - 1
            lo, hi = rng.choice([(2, 6), (10, 30), (60, 150)])
            text = "\n".join(lines[start:start + rng.randint(lo, hi)])[:8000]
            if not text.strip():
                continue
            out.append({"text": text, "kind": "code", "language": l,
                        "source": "%s/%s:%s" % (q["repo"], q["path"], q["start_line"])})
            n += 1
        if n < 13:
            sys.exit("make-strings: only %d %s snippets in %s" % (n, l, args.corpus))
    # code around non-ASCII lines, from the benchmark repos of each language
    repos = {}
    for q in queries:
        repos.setdefault(q["language"], set()).add(q["repo"])
    pool = {}
    for l in LANGS:
        files = []
        for r in sorted(repos[l]):
            for d, _, fs in os.walk(os.path.join(args.corpus, r)):
                files += [os.path.join(d, x) for x in sorted(fs) if x.endswith(EXT[l])]
        files.sort()
        rng.shuffle(files)
        pool[l] = []
        for p in files:
            if len(pool[l]) == 4:
                break
            lines = read_lines(p)
            if not lines:
                continue
            hits = [i for i, s in enumerate(lines) if any(ord(c) > 127 for c in s)]
            if not hits:
                continue
            i = rng.choice(hits)
            lo = max(0, i - rng.randint(1, 8))
            text = "\n".join(lines[lo:lo + rng.randint(3, 20)])[:8000]
            pool[l].append({"text": text, "kind": "code-non-ascii", "language": l,
                            "source": "%s:%d" % (os.path.relpath(p, args.corpus), lo + 1)})
    # two per language; a language whose benchmark code has none (Java) is
    # made up by the others, in language order
    picked = [o for l in LANGS for o in pool[l][:2]]
    for l in LANGS:
        for o in pool[l][2:]:
            if len(picked) < 16:
                picked.append(o)
    if len(picked) < 16:
        sys.exit("make-strings: only %d non-ASCII snippets in %s" % (len(picked), args.corpus))
    out += picked
    # benchmark queries, other than those whose code was taken above
    for l in LANGS:
        for q in by_lang[l][-7:]:
            out.append({"text": q["query"], "kind": "query", "language": l,
                        "source": "bench/quality/queries.tsv.gz qid %s" % q["qid"]})
    # hand-written questions
    hw = handwritten[:]
    rng.shuffle(hw)
    for q in hw[:24]:
        out.append({"text": q["question"], "kind": "question", "language": q["language"],
                    "source": "bench/quality/handwritten/questions.tsv qid %s" % q["qid"]})

    assert len(out) == 200, len(out)
    with io.open(args.out, "w", encoding="utf-8") as f:
        for o in out:
            f.write(json.dumps(o, ensure_ascii=False) + "\n")
    print("make-strings: %d strings -> %s" % (len(out), args.out), file=sys.stderr)


if __name__ == "__main__":
    main()
