#!/usr/bin/env python3
"""words.py -- an independent rendering of codevec-load's --embed-words.

The rule (the parts of src/tsparser.c, lower-cased): an identifier is a run
of ASCII letters, digits, '_' and non-ASCII characters; it splits at '_',
between a lower-case and an upper-case letter (camelCase), before the last
capital of a capital run that a lower-case letter follows (HTTPConfig:
HTTP Config) unless that letter is a lone plural 's' (URLs, IDs), and
between digits and anything else.  Parts are joined by one space and
lower-cased (ASCII only); an identifier of underscores only stays as it is.
Everything else is kept (punct) or, in bare mode, becomes one space, or one
newline when it holds one, and is dropped at the start and the end.

Written as a boundary predicate over positions, not as the loader's
scanner, so that the two implementations check each other.

  words.py split IDENT...              print each identifier's words
  words.py check NONE.jsonl MODE.jsonl MODE
      every snippet's embed_text in MODE.jsonl (loaded with --embed-words
      MODE) must equal this rendering of its embed_text in NONE.jsonl (the
      same tree with --embed-words none); both uncut (a large
      --embed-max-bytes).  Exit 1 and the first differences otherwise.
"""
import json
import re
import sys

IDENT = re.compile(r'[A-Za-z0-9_\u0080-\U0010ffff]+')


def is_lower(c):
    return 'a' <= c <= 'z'


def is_upper(c):
    return 'A' <= c <= 'Z'


def is_digit(c):
    return '0' <= c <= '9'


def boundary(w, i):
    """Does a new part start at w[i] (neither w[i] nor w[i-1] is '_')?"""
    a, b = w[i - 1], w[i]
    if is_lower(a) and is_upper(b):
        return True
    if is_digit(a) != is_digit(b):
        return True
    if is_upper(a) and is_upper(b) and i + 1 < len(w) and is_lower(w[i + 1]):
        plural = w[i + 1] == 's' and (i + 2 >= len(w) or not is_lower(w[i + 2]))
        return not plural
    return False


def split(w):
    """The parts of identifier w."""
    parts, cur = [], ''
    for i, c in enumerate(w):
        if c == '_':
            if cur:
                parts.append(cur)
            cur = ''
            continue
        if cur and boundary(w, i):
            parts.append(cur)
            cur = ''
        cur += c
    if cur:
        parts.append(cur)
    return parts


def ascii_lower(s):
    return ''.join(chr(ord(c) + 32) if is_upper(c) else c for c in s)


def render(text, punct=True):
    """text with every identifier as lower-case words."""
    out = []
    pos = 0
    for m in IDENT.finditer(text):
        gap = text[pos:m.start()]
        if gap:
            out.append(gap if punct else ('\n' if '\n' in gap else ' '))
        parts = split(m.group())
        out.append(' '.join(ascii_lower(p) for p in parts) if parts else m.group())
        pos = m.end()
    if pos < len(text) and punct:
        out.append(text[pos:])
    s = ''.join(out)
    if not punct:
        s = s.lstrip(' \n')
    return s


def expected(d, mode):
    t = d['embed_text']
    qn = d['qualified_name']
    if mode == 'none':
        return t
    if mode == 'name':
        return render(qn, False) + '\n' + t
    if mode == 'all':
        return render(t)
    if mode == 'bare':
        return render(t, False).rstrip()
    if mode == 'name+all':
        # the name line stays as it is, the rest is rendered
        assert t.startswith(qn)
        return render(qn, False) + '\n' + qn + render(t[len(qn):])
    raise SystemExit('unknown mode ' + mode)


def main():
    if sys.argv[1] == 'split':
        for w in sys.argv[2:]:
            print(w + '\t' + ' '.join(ascii_lower(p) for p in split(w)))
        return 0
    none, got, mode = sys.argv[2], sys.argv[3], sys.argv[4]
    a = [json.loads(l) for l in open(none, encoding='utf-8')]
    b = [json.loads(l) for l in open(got, encoding='utf-8')]
    bad = 0
    if len(a) != len(b):
        print('# %d snippets without --embed-words, %d with' % (len(a), len(b)))
        return 1
    for x, y in zip(a, b):
        want = expected(x, mode).rstrip()
        if y['embed_text'] != want:
            bad += 1
            if bad <= 3:
                print('# %s %s\n#   got:  %r\n#   want: %r' % (
                    x['path'], x['qualified_name'], y['embed_text'][:300], want[:300]))
    print('# %d of %d snippets differ' % (bad, len(a)))
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
