#!/usr/bin/env python3
"""bench/quality/ood/convex-fusion.py — would a convex combination of the two
lists' scores beat code.search's weighted reciprocal rank fusion? (issue 27's
"hybrid >= vector"; issue 14, item 5). Chosen on the dev halves by
choose.py's rule, reported on the test halves.

  convex-fusion.py vectors KIT.json.gz MODEL OUT.json.gz [--groups A,B]  (torch; a GPU when there is one)
  convex-fusion.py keyword KIT.json.gz OUT.json [--groups A,B]   (the kit's databases, libpq's PG* settings)
  convex-fusion.py report VECTORS.json.gz KEYWORD.json     (markdown on stdout)

The fusion (Bruch, Gai and Ingber, "An Analysis of Fusion Functions for
Hybrid Retrieval", ACM TOIS 42(1), 2023): over the union of the top DEPTH
(100) of both lists, score = alpha * v + (1 - alpha) * k, ties by id, with
each list's scores normalised and a snippet absent from a list given 0 there:

  mm   min-max over the list: (s - min) / (max - min)
  tmm  the theoretical minimum (cosine similarity clipped at 0, BM25 0)
       and the list's maximum: s / max (Bruch et al.'s TM2C2)

for alpha in ALPHAS, against code.search's defaults (rrf_k 2, keyword_weight
0.5) and vector mode. `vectors` embeds every kit snippet and query with the
model exactly as eval-models.py does and keeps each query's top 100 with its
cosine similarity and the full vector rank of its best answer; `keyword`
runs code.search(query, k => 100, mode => 'keyword') in each group's
database for its keyword_score (BM25) and checks that the ids are the kit's
keyword list. `report` applies choose.py's fusion rule (fusion_rule) to
the grid (OOD dev cells; hybrid at or above vector on each benchmark; the
current defaults stay unless the pick beats them with a paired-bootstrap
95% CI above 0) and prints every benchmark's halves, the in-distribution public
set as a guard.
"""

import argparse
import gzip
import importlib.util
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from choose import OOD, diff_ci, fusion_rule, macro, rr  # noqa: E402

DEPTH = 100
ALPHAS = (0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)
RRF = (2, 0.5)   # code.search's defaults (loaders/schema.c)


def eval_models():
    spec = importlib.util.spec_from_file_location('eval_models', os.path.join(HERE, 'eval-models.py'))
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def groups(kit, a):
    """The kit's groups that --groups names (default: all but verify)."""
    want = a.groups.split(',') if a.groups else None
    return [g for g in kit['groups'] if (g['name'] in want if want else g['benchmark'] != 'verify')]


def cmd_vectors(a):
    em = eval_models()
    kit = json.load(gzip.open(a.kit))
    enc = em.TorchEncoder(a.model)
    out = {}
    for g in groups(kit, a):
        t0 = time.time()
        ids = np.array([s[0] for s in g['snippets']])
        where = {int(x): i for i, x in enumerate(ids)}
        top, S = em.vector_lists(enc([s[1] for s in g['snippets']]), enc([q['query'] for q in g['queries']]), DEPTH)
        for qi, q in enumerate(g['queries']):
            pos = [where[x] for x in q['targets'] if x in where]
            best = max(S[qi, p] for p in pos) if pos else None
            out[q['qid']] = dict(benchmark=g['benchmark'], split=q['split'], language=q['language'],
                                 targets=q['targets'], kw=q['kw'],
                                 vec=[[int(ids[j]), round(float(S[qi, j]), 7)] for j in top[qi]],
                                 vrank=int((S[qi] > best).sum()) + 1 if pos else 0)
        print('%s: %d snippets, %d queries in %.0f s' % (g['name'], len(ids), len(g['queries']), time.time() - t0),
              file=sys.stderr, flush=True)
    json.dump(out, gzip.open(a.out, 'wt'))


def cmd_keyword(a):
    import psycopg
    kit = json.load(gzip.open(a.kit))
    out = {}
    for g in groups(kit, a):
        with psycopg.connect(dbname=g['database'].replace('-', '_')) as c:
            for q in g['queries']:
                rows = c.execute("SELECT id, keyword_score FROM code.search(%s, k => %s, mode => 'keyword')",
                                 (q['query'], DEPTH)).fetchall()
                if [r[0] for r in rows] != q['kw']:
                    sys.exit('%s: the keyword list of %s is not the kit\'s (another database?)' % (g['name'], q['qid']))
                out[q['qid']] = [[r[0], float(r[1])] for r in rows]
        print('%s: %d keyword lists, the kit\'s ids' % (g['name'], len(g['queries'])), file=sys.stderr)
    json.dump(out, open(a.out, 'w'))


def normalise(lst, norm):
    if not lst:
        return {}
    hi = max(c for _, c in lst)
    lo = min(c for _, c in lst) if norm == 'mm' else 0.0
    if hi <= lo:
        return {x: 1.0 for x, _ in lst}
    return {x: (max(c, lo) - lo) / (hi - lo) for x, c in lst}


def convex(v, k, alpha, norm):
    nv, nk = normalise(v, norm), normalise(k, norm)
    s = {x: alpha * nv.get(x, 0.0) + (1 - alpha) * nk.get(x, 0.0) for x in set(nv) | set(nk)}
    return sorted(s, key=lambda x: (-s[x], x))


def cmd_report(a):
    em = eval_models()   # its best_rank and fuse: code.search's rank fusion
    vec = json.load(gzip.open(a.vectors))
    kws = json.load(open(a.keyword))
    methods = ['vector', 'rrf %g/%g' % RRF] + ['%s %.2f' % (n, al) for n in ('mm', 'tmm') for al in ALPHAS]
    cells = {m: {} for m in methods}   # method -> split -> (benchmark, language) -> [RR]
    for qid in sorted(vec):
        q = vec[qid]
        t, v, k = set(q['targets']), q['vec'], kws[qid]
        assert [x for x, _ in k] == q['kw']
        for m in methods:
            if m == 'vector':
                r = q['vrank']
            elif m.startswith('rrf'):
                r = em.best_rank(em.fuse([x for x, _ in v], q['kw'], *RRF)[:DEPTH], t)
            else:
                norm, alpha = m.split()
                r = em.best_rank(convex(v, k, float(alpha), norm)[:DEPTH], t)
            cells[m].setdefault(q['split'], {}).setdefault((q['benchmark'], q['language']), []).append(rr(r))

    def sub(c, benches):
        return {key: x for key, x in c.items() if key[0] in benches}

    benches = sorted({b for b, _ in cells['vector']['dev']})
    cur = methods[1]
    for split in ('dev', 'test'):
        print('### %s halves: MRR@10 (macro over languages), hybrid - vector per benchmark (95%% CI)\n' % split)
        print('| fusion | ' + ' | '.join(benches) + ' | ' + ' | '.join('%s: - vector' % b for b in benches) + ' |')
        print('|---|' + '---:|' * len(benches) + '---|' * len(benches))
        for m in methods:
            c, vc = cells[m][split], cells['vector'][split]
            row = ['%.3f' % macro(sub(c, (b,))) for b in benches]
            row += ['—' if m == 'vector' else '%+.3f (%+.3f..%+.3f)' % diff_ci(sub(c, (b,)), sub(vc, (b,))) for b in benches]
            print('| %s | %s |' % (m, ' | '.join(row)))
        print()

    print('### The fusion rule (choose.py) on the dev halves of the OOD cells\n')
    print('| fusion | dev OOD macro | eligible (hybrid >= vector on %s) | vs %s (95%% CI) | test OOD macro | test public |' % (
        ', '.join(OOD), cur))
    print('|---|---:|---|---|---:|---:|')
    present = [b for b in OOD if sub(cells['vector']['dev'], (b,))]
    rule = fusion_rule({m: sub(cells[m]['dev'], OOD) for m in methods[1:]}, sub(cells['vector']['dev'], OOD),
                       present, cur, tie=lambda m: m)
    eligible = {s[1] for s in rule['ok']}
    for mac, m in sorted(((s[0], s[1]) for s in rule['scored']), reverse=True):
        print('| %s | %.4f | %s | %+.4f (%+.4f..%+.4f) | %.4f | %.3f |' % (
            m, mac, 'yes' if m in eligible else 'no', *diff_ci(sub(cells[m]['dev'], OOD), sub(cells[cur]['dev'], OOD)),
            macro(sub(cells[m]['test'], OOD)), macro(sub(cells[m]['test'], ('public',)))))
    pick = rule['best'][1]
    # fusion_rule's own bootstrap of the pick against the current defaults
    # (None when the pick is the defaults, or when they are not eligible)
    d, lo, hi = rule['gain'] or diff_ci(sub(cells[pick]['dev'], OOD), sub(cells[cur]['dev'], OOD))
    print('\nBest eligible: %s; against the current defaults %+.4f (%+.4f..%+.4f): %s.\n' % (
        pick, d, lo, hi, 'moves' if lo > 0 else 'the current defaults stay (CI not above 0)'))
    print('### public (in distribution) per language, test half: %s and %s against vector\n' % (pick, cur))
    print('| language | vector | %s | %s | %s - %s (95%% CI) |' % (cur, pick, pick, cur))
    print('|---|---:|---:|---:|---|')
    for key in sorted(sub(cells['vector']['test'], ('public',))):
        one = lambda m: {key: cells[m]['test'][key]}  # noqa: E731
        print('| %s | %.3f | %.3f | %.3f | %+.3f (%+.3f..%+.3f) |' % (
            key[1], macro(one('vector')), macro(one(cur)), macro(one(pick)), *diff_ci(one(pick), one(cur))))
    print('| all (macro) | %.3f | %.3f | %.3f | %+.3f (%+.3f..%+.3f) |' % (
        *(macro(sub(cells[m]['test'], ('public',))) for m in ('vector', cur, pick)),
        *diff_ci(sub(cells[pick]['test'], ('public',)), sub(cells[cur]['test'], ('public',)))))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sp = ap.add_subparsers(dest='cmd', required=True)
    p = sp.add_parser('vectors')
    p.add_argument('kit'), p.add_argument('model'), p.add_argument('out'), p.add_argument('--groups')
    p = sp.add_parser('keyword')
    p.add_argument('kit'), p.add_argument('out'), p.add_argument('--groups')
    p = sp.add_parser('report')
    p.add_argument('vectors'), p.add_argument('keyword')
    a = ap.parse_args()
    {'vectors': cmd_vectors, 'keyword': cmd_keyword, 'report': cmd_report}[a.cmd](a)


if __name__ == '__main__':
    main()
