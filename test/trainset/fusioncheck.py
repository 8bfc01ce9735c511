#!/usr/bin/env python3
"""test/trainset/fusioncheck.py ROOT TMP — checks of
bench/quality/ood/convex-fusion.py's score fusion and report, on lists
written here (no database, no model). Needs numpy (the suite's venv).
Prints one line per check: "ok DESCRIPTION" or "not ok DESCRIPTION:
DETAIL"; run.sh counts them.

The references are computed here apart from the script: the fused orders
of two small lists worked out by hand, and for random lists of four
benchmarks each table cell (macro MRR@10 over a benchmark's languages)
from this file's own rank fusion and convex combination.
"""

import gzip
import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np

root, tmp = sys.argv[1], sys.argv[2]
SCRIPT = os.path.join(root, 'bench/quality/ood/convex-fusion.py')


def check(cond, desc, detail=''):
    print(('ok %s' % desc) if cond else ('not ok %s: %s' % (desc, detail)), flush=True)


spec = importlib.util.spec_from_file_location('convex_fusion', SCRIPT)
cf = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cf)

# --- the fusion itself, by hand: v = ids 1-3 by cosine, k = ids 3-4 by BM25
v = [[1, 0.9], [2, 0.5], [3, 0.1]]
k = [[3, 10.0], [4, 5.0]]
# mm: v -> 1, 0.5, 0; k -> 1, 0. alpha 0.5: 1: 0.5, 2: 0.25, 3: 0.5, 4: 0
check(cf.convex(v, k, 0.5, 'mm') == [1, 3, 2, 4], 'mm, alpha 0.5: ties by id (1 before 3), absent terms 0',
      cf.convex(v, k, 0.5, 'mm'))
# tmm: v -> 1, 5/9, 1/9; k -> 1, 0.5. alpha 0.5: 1: 0.5, 2: 0.278, 3: 0.556, 4: 0.25
check(cf.convex(v, k, 0.5, 'tmm') == [3, 1, 2, 4], 'tmm, alpha 0.5: scores over the theoretical minimum 0',
      cf.convex(v, k, 0.5, 'tmm'))
check(cf.convex(v, k, 1.0, 'tmm') == [1, 2, 3, 4], 'alpha 1: the vector order, then the rest by id')
check(cf.convex(v, [], 0.85, 'mm') == [1, 2, 3], 'an empty keyword list: the vector order')
neg = [[5, -0.2], [6, -0.4]]
check(cf.convex(neg, [[6, 1.0]], 0.5, 'tmm') == [6, 5], 'tmm: negative cosines count as 0 (the list then scores 1 each)',
      cf.convex(neg, [[6, 1.0]], 0.5, 'tmm'))
flat = [[7, 0.3], [8, 0.3]]
check(cf.convex(flat, [[8, 2.0], [9, 2.0]], 0.6, 'mm') == [8, 7, 9],
      'mm: a list of equal scores scores 1 each', cf.convex(flat, [[8, 2.0], [9, 2.0]], 0.6, 'mm'))

# --- report on random lists of four benchmarks
rng = np.random.default_rng(7)
bench = {'cosqa': ['python'], 'staqc': ['python'], 'hand': ['c', 'go'], 'public': ['go', 'rust']}
vec, kws = {}, {}
for b, langs in bench.items():
    for lang in langs:
        for i in range(60):
            qid = '%s-%s-%02d' % (b, lang, i)
            ids = rng.choice(np.arange(1, 400), size=140, replace=False)
            vids, kids = [int(x) for x in ids[:100]], [int(x) for x in ids[40:140]]
            rng.shuffle(kids)
            cos = np.sort(rng.uniform(-0.1, 0.9, 100))[::-1]
            bm = np.sort(rng.uniform(0.5, 20.0, 100))[::-1]
            target = int(rng.choice(ids[:120])) if i % 5 else 999
            vr = vids.index(target) + 1 if target in vids else (0 if target == 999 else 150)
            vec[qid] = dict(benchmark=b, split='dev' if i % 2 else 'test', language=lang, targets=[target],
                            kw=kids, vec=[[x, round(float(c), 7)] for x, c in zip(vids, cos)], vrank=vr)
            kws[qid] = [[x, float(s)] for x, s in zip(kids, bm)]
with gzip.open(os.path.join(tmp, 'fvec.json.gz'), 'wt') as f:
    json.dump(vec, f)
json.dump(kws, open(os.path.join(tmp, 'fkw.json'), 'w'))
r = subprocess.run([sys.executable, SCRIPT, 'report', os.path.join(tmp, 'fvec.json.gz'), os.path.join(tmp, 'fkw.json')],
                   capture_output=True, text=True)
check(r.returncode == 0, 'report runs', r.stderr[-500:])


def rr(rank):
    return 1.0 / rank if 0 < rank <= 10 else 0.0


def first(order, t):
    return next((i for i, x in enumerate(order[:100], 1) if x in t), 0)


def ref_rank(q, method):
    t = set(q['targets'])
    if method == 'vector':
        return q['vrank']
    s = {}
    if method == 'rrf 2/0.5':
        for i, (x, _) in enumerate(q['vec'], 1):
            s[x] = 1 / (2 + i)
        for i, x in enumerate(q['kw'], 1):
            s[x] = s.get(x, 0) + 0.5 / (2 + i)
    else:   # 'tmm 0.85': cosine / its max (negatives 0), BM25 / its max
        vm = max(c for _, c in q['vec'])
        km = max(c for _, c in kws[q['qid']])
        for x, c in q['vec']:
            s[x] = 0.85 * max(c, 0) / vm
        for x, c in kws[q['qid']]:
            s[x] = s.get(x, 0) + 0.15 * c / km
    return first(sorted(s, key=lambda x: (-s[x], x)), t)


for qid, q in vec.items():
    q['qid'] = qid
tables = {}
for m in re.finditer(r'### (dev|test) halves.*?\n\n(\|.*?)\n\n', r.stdout, re.S):
    rows = [line.split('|')[1:-1] for line in m.group(2).split('\n')]
    head = [c.strip() for c in rows[0]]
    tables[m.group(1)] = {row[0].strip(): dict(zip(head[1:], (c.strip() for c in row[1:]))) for row in rows[2:]}
check(set(tables) == {'dev', 'test'}, 'report: a table for each half', list(tables))
for method in ('vector', 'rrf 2/0.5', 'tmm 0.85'):
    bad = []
    for split in ('dev', 'test'):
        for b, langs in bench.items():
            cells = [np.mean([rr(ref_rank(q, method)) for q in vec.values()
                              if q['benchmark'] == b and q['language'] == lang and q['split'] == split])
                     for lang in langs]
            got = tables.get(split, {}).get(method, {}).get(b)
            if got != '%.3f' % np.mean(cells):
                bad.append('%s %s %s: %s, want %.3f' % (split, b, method, got, np.mean(cells)))
    check(not bad, 'report: %s MRR@10 of every benchmark and half equals this file\'s (macro over languages)' % method,
          '; '.join(bad[:3]))
m = re.search(r'Best eligible: (\S+ \S+);', r.stdout)
rule = {row[0].strip(): float(row[1]) for row in (line.split('|')[1:-1] for line in r.stdout.split('\n')
                                                  if line.startswith('| ') and '| yes |' in line)}
check(m is not None and rule and round(rule.get(m.group(1), -1), 3) == round(max(rule.values()), 3),
      'report: the pick is an eligible point with the best dev OOD macro (to 0.001)', (m and m.group(1), rule))
check('| all (macro) |' in r.stdout, 'report: the public set per language, with its macro')
