#!/usr/bin/env python3
"""cuts.py -- characters on every cut boundary of codevec-load, and random bytes.

    cuts.py make DIR          write DIR/cuts.py (the fixtures below) and
                              DIR/rand/r*.c (random ill-formed UTF-8)
    cuts.py sig JSONL         signatures: cut at 400 bytes on a boundary
    cuts.py doc JSONL         embed_text of --embed-fields=doc
                              --embed-words=none: the doc cut at 300 bytes
    cuts.py embed FULL CUT-N.jsonl...
                              embed_text of runs with --embed-max-bytes=N
                              (one file per N, named cut-N.jsonl) against
                              the uncut text of the same options (FULL,
                              --embed-max-bytes=16M)

For each of a 2-, 3- and 4-byte character (é, €, 😀) the fixtures put the
character's first byte at every offset from 5 bytes before the cut to the
cut itself, so the cut falls before, inside and after it.  The expected
text is computed here from the source text by the rules the README gives
(cut to the largest character boundary at or below the limit; embed_text
then goes back to the last line end when one lies in the last quarter,
and loses trailing whitespace), never from the loader's output.  Exits 1
on any mismatch.
"""
import json
import os
import random
import sys

CHARS = {2: "é", 3: "€", 4: "😀"}
SIG_MAX = 400
DOC_MAX = 300
C_SPACE = " \t\n\v\f\r"         # C isspace() in the C locale


def cut(b, limit):
    """Largest prefix of UTF-8 bytes b of at most limit bytes, whole characters."""
    if len(b) <= limit:
        return b
    c = limit
    while c > 0 and (b[c] & 0xC0) == 0x80:
        c -= 1
    return b[:c]


def sig_name(n, o):
    return "s%d_%d" % (n, o)


def make(d):
    os.makedirs(os.path.join(d, "rand"), exist_ok=True)
    out = []
    for n, ch in CHARS.items():
        for o in range(SIG_MAX - 5, SIG_MAX + 1):
            head = 'def %s(a="' % sig_name(n, o)
            pad = "x" * (o - len(head.encode()))
            out.append(head + pad + ch * 8 + '"):\n    pass\n\n')
        for o in range(DOC_MAX - 5, DOC_MAX + 1):
            out.append('def d%d_%d():\n    """%s%s"""\n    pass\n\n' % (n, o, "y" * o, ch * 8))
    # a body whose lines mix every width, for --embed-max-bytes cuts
    lines = ["def body():"]
    for i in range(40):
        lines.append("    v%d = 'a%s'" % (i, "é€😀"[i % 3:] + "😀é€"[: i % 3] + "z" * (i % 5)))
    out.append("\n".join(lines) + "\n")
    with open(os.path.join(d, "cuts.py"), "w", encoding="utf-8") as f:
        f.write("".join(out))
    # random bytes inside a comment: every kind of ill-formed UTF-8 (seeded)
    rnd = random.Random(22)
    alphabet = ([bytes([b]) for b in range(0x20, 0x7F) if b not in b"*/"] +
                [bytes([b]) for b in range(0x80, 0x100)] * 2 +
                ["é€😀\U0010FFFF".encode()[i:i + k] for i in range(0, 9) for k in (1, 2, 3)])
    for i in range(300):
        junk = b"".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 40)))
        with open(os.path.join(d, "rand", "r%03d.c" % i), "wb") as f:
            f.write(b"int r%03d(void)\n{\n\t/* " % i + junk + b" */\n\treturn 0;\n}\n")


def load(path):
    with open(path, encoding="utf-8") as f:      # strict: must be UTF-8
        return [json.loads(line) for line in f]


def main():
    cmd = sys.argv[1]
    bad = 0
    n = 0
    if cmd == "make":
        make(sys.argv[2])
        return
    if cmd == "sig":
        for d in load(sys.argv[2]):
            if not d["symbol"].startswith("s") or "_" not in d["symbol"]:
                continue
            head = d["code"].split("\n")[0]
            want = cut(head.encode(), SIG_MAX).decode().rstrip(":{ ")
            n += 1
            if d["signature"] != want:
                bad += 1
                print("#   %s: signature %r, want %r" % (d["symbol"], d["signature"][-12:], want[-12:]))
    elif cmd == "doc":
        for d in load(sys.argv[2]):
            if not d["symbol"].startswith("d"):
                continue
            doc = d["code"].split('"""')[1]
            want = cut(doc.encode(), DOC_MAX).decode().rstrip(C_SPACE)
            n += 1
            if d["embed_text"] != want:
                bad += 1
                print("#   %s: embed_text ends %r, want %r" % (d["symbol"], d["embed_text"][-8:], want[-8:]))
    elif cmd == "embed":
        full = {(x["path"], x["qualified_name"], x["start_line"]): x["embed_text"] for x in load(sys.argv[2])}
        for path in sys.argv[3:]:
            limit = int(os.path.basename(path)[4:-6])
            for d in load(path):
                b = full[(d["path"], d["qualified_name"], d["start_line"])].encode()
                if len(b) > limit:
                    b = cut(b, limit)
                    nl = b.rfind(b"\n")
                    if nl >= 0 and nl > limit * 3 // 4:
                        b = b[:nl]
                want = b.decode().rstrip(C_SPACE)
                n += 1
                if d["embed_text"] != want or len(d["embed_text"].encode()) > limit:
                    bad += 1
                    print("#   %s at %d bytes: %r, want %r" % (d["qualified_name"], limit,
                                                             d["embed_text"][-12:], want[-12:]))
    print("# %s: %d checked, %d wrong" % (cmd, n, bad))
    sys.exit(1 if bad or n == 0 else 0)


if __name__ == "__main__":
    main()
