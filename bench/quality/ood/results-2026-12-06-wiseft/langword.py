#!/usr/bin/env python3
"""bench/quality/ood/results-2026-12-06-wiseft/langword.py KIT FOLDER... — an
experiment, not part of code.search: vector MRR@10 of CoSQA and the hand-written
set with the language word taken out of each question ("python read yaml" ->
"read yaml"), per model (eval-models.py's encoder and exact vector ranks over
the group's snippets, score_group). Results in README.md.
"""
import gzip
import importlib.util
import json
import os
import re
import sys

import numpy as np

spec = importlib.util.spec_from_file_location(
    'ev', os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'eval-models.py'))
ev = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ev)
LANG = r'(?:python3?|py)'


def strip(q):
    """The question without the language's name (and a preposition before it)."""
    s = re.sub(r'\b(?:in|with|using|for|on)\s+' + LANG + r'\b', ' ', q, flags=re.I)
    s = re.sub(r'\b' + LANG + r'\b', ' ', s, flags=re.I)
    return ' '.join(s.split()) or q


def main():
    kit = json.load(gzip.open(sys.argv[1], 'rt'))
    groups = [g for g in kit['groups'] if g['benchmark'] in ('cosqa', 'hand')]
    for f in sys.argv[2:]:
        enc, cache = ev.encoder(f, 'auto'), {}
        for g in groups:
            for name, fn in (('orig', lambda q: q), ('strip', strip)):
                asked = dict(g, queries=[dict(q, query=fn(q['query'])) for q in g['queries']])
                rr = {'dev': [], 'test': []}
                for r in ev.score_group(asked, enc, cache):
                    rr[r['split']].append(ev.rr(r['vector']))
                changed = sum(fn(q['query']) != q['query'] for q in g['queries'])
                print('%s %s %s changed %d: dev %.4f test %.4f' % (
                    os.path.basename(f.rstrip('/')), g['name'], name, changed,
                    np.mean(rr['dev']), np.mean(rr['test'])), flush=True)


if __name__ == '__main__':
    main()
