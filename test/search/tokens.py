"""test/search/tokens.py -- an independent model of codevec_code (ASCII).

Reimplements, from the rules in src/tsparser.c's header, the lexemes that
to_tsvector('codevec_code', text) gives for ASCII text: identifiers whole
and split (snake_case, camelCase, acronyms, digits), a.b / a/b / a::b / a->b
chains whole, tokens over 255 bytes dropped, lower-cased, English stop
words (PostgreSQL's english.stop) dropped.

    python3 tokens.py STOPFILE FILE...   prints "FILE<TAB>lexeme lexeme ..."
    python3 tokens.py STOPFILE --query TEXT   prints the lexemes of TEXT
"""
import sys

MAX = 255


def isid(ch):
    return ch.isascii() and (ch.isalnum() or ch == "_")


def parts(ident):
    out = []
    for chunk in ident.split("_"):
        if not chunk:
            continue
        cur = chunk[0]
        for i in range(1, len(chunk)):
            p, c = chunk[i - 1], chunk[i]
            nxt = chunk[i + 1] if i + 1 < len(chunk) else ""
            brk = False
            if c.isupper() and p.islower():
                brk = True
            elif c.isdigit() != p.isdigit():
                brk = True
            elif c.isupper() and p.isupper() and nxt.islower():
                after = chunk[i + 2] if i + 2 < len(chunk) else ""
                brk = not (nxt == "s" and not after.islower())
            if brk:
                out.append(cur)
                cur = c
            else:
                cur += c
        out.append(cur)
    return out


def lexemes(text, stop):
    lex = []
    i, n = 0, len(text)
    while i < n:
        if not isid(text[i]):
            i += 1
            continue
        start, j = i, i
        while j < n and isid(text[j]):
            j += 1
        comps = [text[i:j]]
        while True:
            sep = 0
            if j < n and text[j] in "./":
                sep = 1
            elif text[j:j + 2] in ("::", "->"):
                sep = 2
            if sep and j + sep < n and isid(text[j + sep]):
                k = j + sep
                while k < n and isid(text[k]):
                    k += 1
                comps.append(text[j + sep:k])
                j = k
            else:
                break
        whole = text[start:j]
        if len(comps) >= 2 and len(whole) <= MAX:
            lex.append(whole)
        for c in comps:
            ps = parts(c)
            if len(ps) >= 2 or (len(ps) == 1 and "_" in c):
                if len(c) <= MAX:
                    lex.append(c)
                lex += [p for p in ps if len(p) <= MAX]
            elif ps and len(c) <= MAX:
                lex.append(c)
        i = j
    return sorted({w.lower() for w in lex} - stop)


if __name__ == "__main__":
    stop = {w.strip() for w in open(sys.argv[1]) if w.strip()}
    if sys.argv[2] == "--query":
        print(" ".join(lexemes(sys.argv[3], stop)))
    else:
        for f in sys.argv[2:]:
            print(f + "\t" + " ".join(lexemes(open(f).read(), stop)))
