#!/usr/bin/env python3
"""bench/quality/report8.py — the eight-language public benchmark's scores
(issues 14 and 20) from fastrank.py's rank files: results-8lang.json,
results-8lang.md (report.py includes it in results.md) and every query's
ranks in results-8lang-ranks.tsv.gz.

  report8.py --run LABEL=RANKS.json.gz ... [--shipped LABEL] [--base LABEL]
             [--fp32 LABEL] [--check CHECK.json ...] [--notes FILE]

Halves as the rule of bench/quality says (ood/README.md): dev = odd qids
(BM25 and the fusion defaults were tuned there), test = even qids, held
out.  MRR@10 per language and overall (micro: all queries weigh the same;
600 per language, so it is also the mean of the languages on the full set).
95% CIs: bootstrap over the queries of the cell (2,000 resamples, seed 1);
differences between two runs or two modes are paired (the same resampled
queries on both sides).
"""

import argparse
import collections
import datetime
import gzip
import json
import os
import subprocess

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
LANGS = ['c', 'cpp', 'go', 'java', 'javascript', 'python', 'rust', 'typescript']
N_BOOT = 2000


def rr(r):
    return 1.0 / r if 0 < r <= 10 else 0.0


def boot(x, y=None, seed=1):
    """mean of x (or of x - y, paired) and its 95% bootstrap interval."""
    d = np.asarray(x, float) - (0 if y is None else np.asarray(y, float))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(d), size=(N_BOOT, len(d)))
    means = np.sort(d[idx].mean(axis=1))
    return [float(d.mean()), float(means[int(N_BOOT * .025)]), float(means[int(N_BOOT * .975) - 1])]


def halves(qids):
    return dict(all=qids, dev=[q for q in qids if q % 2 == 1], test=[q for q in qids if q % 2 == 0])


def modes_of(run):
    first = run['fusions'][0]
    return [('vector', 'vector'), ('keyword', 'keyword'),
            ('hybrid', 'hybrid_%d_%g' % (first[0], first[1]))]


def score(runs, order):
    """metrics[label][mode][half][lang] = dict(n, mrr10 [m, lo, hi], r1, r10)."""
    out = {}
    for label in order:
        run = runs[label]
        qs = {r['qid']: r for r in run['queries']}
        out[label] = {}
        for mode, key in modes_of(run):
            out[label][mode] = {}
            for half, ids in halves(sorted(qs)).items():
                cell = {}
                for lang in LANGS + ['all']:
                    sel = [qs[i] for i in ids if lang == 'all' or qs[i]['language'] == lang]
                    if not sel:
                        continue
                    ranks = [r[key] for r in sel]
                    cell[lang] = dict(n=len(sel), mrr10=boot([rr(x) for x in ranks]),
                                      r1=sum(x == 1 for x in ranks) / len(sel),
                                      r10=sum(0 < x <= 10 for x in ranks) / len(sel))
                out[label][mode][half] = cell
    return out


def paired(run_a, key_a, run_b, key_b):
    """[half][lang] = MRR@10(a) - MRR@10(b) with its paired CI, over the queries of both."""
    a = {r['qid']: r for r in run_a['queries']}
    b = {r['qid']: r for r in run_b['queries']}
    ids = sorted(set(a) & set(b))
    out = {}
    for half, hs in halves(ids).items():
        out[half] = {}
        for lang in LANGS + ['all']:
            sel = [i for i in hs if lang == 'all' or a[i]['language'] == lang]
            out[half][lang] = boot([rr(a[i][key_a]) for i in sel], [rr(b[i][key_b]) for i in sel])
    return out


def f3(x):
    return '%.3f' % x


def ci(c, signed=False):
    fmt = '%+.3f' if signed else '%.3f'
    return (fmt + ' (' + fmt + '..' + fmt + ')') % tuple(c)


def table(rows, head):
    s = '| ' + ' | '.join(head) + ' |\n|' + '|'.join('---' if i == 0 else '---:'
                                                     for i in range(len(head))) + '|\n'
    return s + ''.join('| ' + ' | '.join(str(c) for c in r) + ' |\n' for r in rows)


def git(*a):
    return subprocess.run(['git', '-C', HERE, *a], stdout=subprocess.PIPE, text=True,
                          stderr=subprocess.DEVNULL).stdout.strip()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--run', action='append', required=True, help='LABEL=RANKS.json.gz')
    ap.add_argument('--shipped', help='label of the shipped default (int8)')
    ap.add_argument('--base', help='label of all-MiniLM-L6-v2 (int8)')
    ap.add_argument('--fp32', help='label of the shipped default at fp32')
    ap.add_argument('--check', action='append', default=[], help="fastrank.py check's JSON")
    ap.add_argument('--notes', action='append', default=[],
                    help='markdown appended to the section (subcorpus.py tables, how it was run)')
    ap.add_argument('--sub', action='append', default=[],
                    help="LABEL=JSON: subcorpus.py score's results, kept in the JSON")
    ap.add_argument('--date', default=datetime.date.today().isoformat())
    ap.add_argument('--json', default=os.path.join(HERE, 'results-8lang.json'))
    ap.add_argument('--md', default=os.path.join(HERE, 'results-8lang.md'))
    ap.add_argument('--ranks-out', default=os.path.join(HERE, 'results-8lang-ranks.tsv.gz'))
    a = ap.parse_args()
    runs, order = {}, []
    for x in a.run:
        label, path = x.split('=', 1)
        runs[label] = json.load(gzip.open(path, 'rt'))
        order.append(label)
    m = score(runs, order)
    res = dict(date=a.date, commit=git('rev-parse', '--short', 'HEAD'),
               dirty=bool(git('status', '--porcelain', '--', '.')),
               languages=LANGS, bootstrap=dict(resamples=N_BOOT, seed=1, level=0.95),
               runs={l: dict(info=runs[l]['info'], depth=runs[l]['depth'], fusions=runs[l]['fusions'],
                             seconds=runs[l]['seconds'], metrics=m[l])
                     for l in order},
               checks=[json.load(open(c)) for c in a.check])
    md = ['## Eight languages: the shipped model, int8 and fp32 (issues 14 and 20), %s\n' % a.date]
    first = runs[order[0]]
    info = first['info']
    nq = len(first['queries'])
    per = collections.Counter(r['language'] for r in first['queries'])
    md.append('%d queries (%s) against all %d snippets of the eight-language corpus, docs stripped; '
              'one database loaded by `run.sh load` (codevec-load\'s default embed_text) and embedded '
              'with the shipped model; another model\'s vectors of the same snippets made by the same '
              '`embed()` (`subcorpus.py embed`). Ranks by `fastrank.py` (exact vector ranking from '
              'the `embed()` vectors, keyword lists from `code.search(mode => \'keyword\')`, hybrid fused '
              'as code.search does: rrf_k %d, keyword_weight %g, depth %d — code.search\'s defaults), '
              'checked against code.search itself below. Halves: **test = even qids (held out)**, '
              'dev = odd qids (BM25 and the fusion defaults were tuned there). Cells: MRR@10 '
              '(95%% bootstrap CI over the queries, 2,000 resamples).\n' % (
                  nq, ', '.join('%s %d' % (l, per[l]) for l in LANGS), info['snippets'],
                  first['fusions'][0][0], first['fusions'][0][1], first['depth']))
    for half, title in (('test', 'held-out half (even qids, 2,400 queries)'),
                        ('all', 'full set (4,800 queries)')):
        rows = []
        for l in order:
            for mode, _ in modes_of(runs[l]):
                c = m[l][mode][half]
                rows.append([l, mode] + [ci(c[x]['mrr10']) if x in c else '' for x in LANGS + ['all']]
                            + [f3(c['all']['r1']), f3(c['all']['r10'])])
        md.append('\n### MRR@10, %s\n' % title)
        md.append(table(rows, ['run', 'mode'] + LANGS + ['all', 'R@1', 'R@10']))
    if a.shipped:
        s = runs[a.shipped]
        hk = modes_of(s)[2][1]
        hv = paired(s, hk, s, 'vector')
        res['shipped_hybrid_minus_vector'] = hv
        md.append('\n### Issue 14\'s targets, shipped default (%s)\n' % a.shipped)
        rows = []
        for half in ('test', 'all'):
            v = m[a.shipped]['vector'][half]
            low = [x for x in LANGS if v[x]['mrr10'][0] < 0.45]
            sig_below = [x for x in LANGS if hv[half][x][2] < 0]
            d = hv[half]['all']
            rows.append([half, f3(v['all']['mrr10'][0]) + (' met' if v['all']['mrr10'][0] >= 0.55 else ' **not met**'),
                         ('min %s %.3f' % min(((x, v[x]['mrr10'][0]) for x in LANGS), key=lambda t: t[1]))
                         + (' met' if not low else ' **not met** (%s)' % ', '.join(low)),
                         ci(d, True) + (' met' if d[0] >= 0.01 and d[1] > 0 else ' **not met**'),
                         'met' if not sig_below else '**not met** (%s)' % ', '.join(sig_below)])
        md.append(table(rows, ['half', 'vector all >= 0.55', 'each language >= 0.45',
                               'hybrid - vector >= +0.01, CI > 0',
                               'hybrid never significantly below vector (per language)']))
        rows = [[x] + [ci(hv[h][x], True) for h in ('test', 'all')] for x in LANGS + ['all']]
        md.append('\nHybrid - vector per language (paired):\n')
        md.append(table(rows, ['language', 'test half', 'full set']))
    if a.shipped and a.base:
        res['shipped_minus_base'] = {mode: paired(runs[a.shipped], k, runs[a.base], k)
                                     for mode, k in modes_of(runs[a.shipped]) if mode != 'keyword'}
        md.append('\n### %s - %s (paired)\n' % (a.shipped, a.base))
        rows = [[mode, x] + [ci(res['shipped_minus_base'][mode][h][x], True) for h in ('test', 'all')]
                for mode in res['shipped_minus_base'] for x in LANGS + ['all']]
        md.append(table(rows, ['mode', 'language', 'test half', 'full set']))
    if a.shipped and a.fp32:
        i8, f32 = runs[a.shipped], runs[a.fp32]
        d = {mode: paired(i8, k, f32, k) for mode, k in modes_of(i8) if mode != 'keyword'}
        res['int8_minus_fp32'] = d
        same = sum(x['vrank_full'] == y['vrank_full'] for x, y in zip(
            sorted(i8['queries'], key=lambda r: r['qid']), sorted(f32['queries'], key=lambda r: r['qid'])))
        res['int8_fp32_same_vector_rank'] = same
        md.append('\n### Issue 20: int8 - fp32, %s (paired; target |difference| <= 0.005)\n' % a.shipped)
        rows = []
        for mode in d:
            for x in LANGS + ['all']:
                rows.append([mode, x, f3(m[a.shipped][mode]['all'][x]['mrr10'][0]),
                             f3(m[a.fp32][mode]['all'][x]['mrr10'][0]),
                             ci(d[mode]['all'][x], True), ci(d[mode]['test'][x], True)])
        md.append(table(rows, ['mode', 'language', 'int8 (full)', 'fp32 (full)',
                               'int8 - fp32, full set', 'int8 - fp32, test half']))
        dv = d['vector']['all']['all']
        md.append('\nVector MRR@10 over all %d queries: int8 - fp32 = %+.4f (95%% CI %+.4f..%+.4f): '
                  '%s; the target\'s vector rank over the whole corpus is the same at both precisions '
                  'for %d of %d queries.\n' % (
                      len(i8['queries']), dv[0], dv[1], dv[2],
                      ('within 0.005 (met), and the CI is inside ±0.005' if max(abs(dv[1]), abs(dv[2])) <= 0.005
                       else 'within 0.005 by the point estimate (met); the CI reaches past ±0.005')
                      if abs(dv[0]) <= 0.005 else '**not within 0.005**', same, len(i8['queries'])))
    if res['checks']:
        md.append('\n### fastrank.py against code.search\n')
        rows = [[c['ranks'], c['queries'], '%d / %d' % (c['same'].get('vector top10', 0), c['queries']),
                 '%d / %d' % (c['same'].get('vector rank', 0), c['queries']),
                 '%d / %d' % (c['same'].get('hybrid top10', 0), c['queries']),
                 '%d / %d' % (c['same'].get('hybrid rank', 0), c['queries'])] for c in res['checks']]
        md.append(table(rows, ['ranks', 'queries', 'same vector top 10', 'same vector target rank',
                               'same hybrid top 10', 'same hybrid target rank']))
    rows = [[l, runs[l]['info']['model'] + ('' if runs[l]['info'].get('model_name') in (
                 None, runs[l]['info']['model']) else ' (%s)' % runs[l]['info']['model_name']),
             runs[l]['info']['cpu_precision'],
             runs[l]['info']['model_sha256'][:12], runs[l]['info']['snippets'],
             '%.0f s' % runs[l]['seconds']['embed_queries'], '%.0f s' % runs[l]['seconds']['keyword']]
            for l in order]
    md.append('\nRuns (database settings read back by fastrank.py):\n')
    md.append(table(rows, ['run', 'codevec.model', 'codevec.cpu_precision', 'model sha256',
                           'snippets', 'embed %d queries' % nq, 'keyword lists']))
    for n in a.notes:
        md.append('\n' + open(n).read().strip() + '\n')
    res['subcorpus'] = {x.split('=', 1)[0]: json.load(open(x.split('=', 1)[1])) for x in a.sub}
    md.append('\nGenerated by `report8.py` at commit %s%s.\n' % (
        res['commit'], ' (work tree with uncommitted changes in bench/quality)' if res['dirty'] else ''))
    with open(a.md, 'w') as f:
        f.write('\n'.join(md))
    with open(a.json, 'w') as f:
        json.dump(res, f, indent=1)
    # every query's ranks (top 10, 0 = not there; vrank_full over the whole corpus)
    with gzip.GzipFile(a.ranks_out, 'wb', mtime=0) as f:
        f.write(b'run\tqid\tlanguage\tvector\tkeyword\thybrid\tvrank_full\n')
        for l in order:
            hk = modes_of(runs[l])[2][1]
            for r in sorted(runs[l]['queries'], key=lambda r: r['qid']):
                f.write(('%s\t%d\t%s\t%d\t%d\t%d\t%d\n' % (
                    l, r['qid'], r['language'], r['vector'], r['keyword'], r[hk],
                    r['vrank_full'])).encode())
    print('%s, %s, %s written' % (a.md, a.json, a.ranks_out))


if __name__ == '__main__':
    main()
