#!/usr/bin/env python3
"""tools/train-model/webquery.py — the "web query" rewrite of a doc sentence,
a query style for train.py (--webq, issue 27).

People type search-engine questions, not docstrings: CoSQA's queries (real
Bing queries, Huang et al. 2021, arXiv:2105.13239) read "python check if
file exists", "sort list of dict by key python", "how to get the last
element of a list in python": lower case, no final full stop, imperative
or bare noun phrases, no articles, often the language's name, sometimes
"how to".  The training pairs' queries are first sentences of docs
("Returns the number of bytes left in the buffer.").  This rule rewrites one
into the other's shape, so that a model trained on a mixture sees both:

  1. markup out: `code`, ``code``, *emphasis*, {@code x} keep their words;
     a parenthesised aside and everything after the first ';' or ':' go;
  2. lower case; the final full stop and other end punctuation go;
  3. the leading third-person verb becomes imperative ("returns" ->
     "return", "checks" -> "check", "tries" -> "try"); a leading "return"
     or "get" becomes "get" (half the time) or goes, as in "python max
     value of dict"; "returns true if" / "returns whether" become "check if";
  4. "given", "specified", "this", "that" (a fixed list below) go, and the
     articles (a, an, the) too unless the last draw keeps them (p 0.3);
  5. at most 10 words are kept (CoSQA's median is 6);
  6. the language's name is put first (p 0.45), last (p 0.35: half of
     those as "in python") or not at all; "how to " is put before an
     imperative (p 0.2; a third-person verb made imperative, or one of
     IMPERATIVES).  The rates are those of CoSQA's dev queries (python
     first 47 %, last 38 %, "in python" 17 %, "how" 23 %; never its test
     half).

Randomness comes from the caller's random.Random, so train.py draws the
rewrite again every epoch from its seed.  None when too little is left (fewer
than 2 words), so the pair keeps its own query.
"""
import re

# the spelling people type for each of the loader's languages
LANG_WORD = {'c': 'c', 'cpp': 'c++', 'go': 'golang', 'java': 'java',
             'javascript': 'javascript', 'python': 'python', 'rust': 'rust',
             'typescript': 'typescript'}
ARTICLES = {'a', 'an', 'the'}
FILLER = {'given', 'specified', 'this', 'that', 'supplied', 'provided'}
# third-person verbs whose imperative is not the plain -s/-es/-ies rule
IRREGULAR = {'does': 'do', 'goes': 'go', 'has': 'have', 'is': 'check if'}
# leading verbs a doc sentence starts with that a searcher says as "get"
GETTERS = {'return', 'get', 'retrieve', 'fetch', 'obtain', 'give', 'yield'}
# imperatives a doc sentence may start with ("Parse a header line."): with
# the third-person verbs, the starts "how to" may go before
IMPERATIVES = {'add', 'append', 'apply', 'build', 'calculate', 'call', 'check', 'clear', 'close',
               'compare', 'compute', 'convert', 'copy', 'count', 'create', 'decode', 'delete',
               'encode', 'find', 'format', 'generate', 'handle', 'initialize', 'insert', 'load',
               'make', 'merge', 'open', 'parse', 'print', 'read', 'register', 'remove',
               'replace', 'reset', 'resolve', 'run', 'save', 'search', 'send', 'set', 'sort',
               'split', 'start', 'stop', 'update', 'validate', 'wait', 'write'}
# words of four letters or more ending in a single 's' that are not verbs
NOT_VERBS = {'this', 'alias', 'always', 'bytes', 'status', 'unless'}

_MARKUP = re.compile(r'\{@\w+\s+([^}]*)\}|`+([^`]*)`+|\*+([^*]+)\*+')
_PAREN = re.compile(r'\s*\([^()]*\)')
_WORD = re.compile(r"[\w+#.'/-]+")


def imperative(w):
    """The imperative of a third-person present verb w ('returns' ->
    'return'); w itself when it does not look like one."""
    if w in IRREGULAR:
        return IRREGULAR[w]
    if w in NOT_VERBS or len(w) < 4 or not w.endswith('s') or w.endswith('ss'):
        return w
    if w.endswith('ies'):
        return w[:-3] + 'y'
    if re.search(r'(sh|ch|x|zz|ss)es$', w):
        return w[:-2]
    return w[:-1]


def rewrite(query, language, rng):
    """The web-query form of a doc sentence (see the module doc), drawn with
    rng; None when fewer than two words are left."""
    q = _MARKUP.sub(lambda m: next(g for g in m.groups() if g is not None), query)
    q = _PAREN.sub('', q)
    q = re.split(r'[;:]\s', q, maxsplit=1)[0]
    words = [w.strip(".,!?'\"") for w in _WORD.findall(q.lower())]
    words = [w for w in words if w]
    if not words:
        return None
    first = imperative(words[0])
    verb = first != words[0] or first in IMPERATIVES or first in GETTERS
    rest = words[1:]
    if first in GETTERS and (rest[:1] == ['whether'] or rest[:2] == ['true', 'if']):
        first, rest = 'check if', rest[1 if rest[0] == 'whether' else 2:]
    elif first in GETTERS:
        first = 'get' if rng.random() < 0.5 else ''
    words = (first.split() if first else []) + rest
    bare = [w for w in words if w not in ARTICLES and w not in FILLER][:10]
    if len(bare) < 2:
        return None
    how = ['how', 'to'] if verb and first and rng.random() < 0.2 else []
    lw = LANG_WORD.get(language)
    r = rng.random()
    head, tail = [], []
    if lw and r < 0.45:
        head = [lw]
    elif lw and r < 0.80:
        tail = ['in', lw] if rng.random() < 0.5 else [lw]
    if rng.random() < 0.3:	# the articles kept ("check if a variable is an array python")
        bare = [w for w in words if w not in FILLER][:10]
    return ' '.join(head + how + bare + tail)


if __name__ == '__main__':
    import json
    import random
    import sys
    rng = random.Random(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    for line in sys.stdin:	# JSON lines with query and language -> rewrites
        p = json.loads(line)
        print(rewrite(p['query'], p.get('language', ''), rng))
