#!/usr/bin/env python3
"""bench/quality/report.py — results.md, results.json and plots from the runs.

Inputs ($CODEVEC_QUALITY_CACHE, default /tmp/codevec-quality):
  search.json            eval.py search: every query through code.search
  lists.json.gz          eval.py lists: plain-SQL vector / keyword lists
                         (depth 400) for the rrf_k x depth grid, fused offline
  kw-*.lists.json.gz     eval.py kwlists: other keyword query semantics
  variants/*.lists.json.gz  variants.py: embed_text variants on the sub-corpus
  timings.json           run.sh's step timings
and corpus-stats.json, manifest.tsv, queries.tsv.gz from bench/quality.
"""

import glob
import gzip
import json
import os
import platform
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from eval import fuse, metrics, rank_of, read_queries   # noqa: E402

CACHE = os.environ.get('CODEVEC_QUALITY_CACHE', '/tmp/codevec-quality')
LANGS = ['go', 'javascript', 'python', 'rust']
RRF_KS = [0, 5, 10, 20, 30, 60, 100, 200]
DEPTHS = [10, 20, 50, 100, 200, 400]
# the keyword-weight grid (depth 100) and code.search's defaults when this
# four-language set was measured (2/0.5 since 2026-12-06, outside this grid)
FUSE_KS = [0, 5, 10, 20, 60]
FUSE_WS = [1.0, 0.75, 0.5, 0.35, 0.25, 0.15, 0.1, 0.0]
DEFAULT_RRF_K, DEFAULT_KW = 5, 0.35
# the pointer under the title to the eight-language section (report8.py)
PTR_8LANG = ('**The current set has eight languages (4,800 queries, 106,013 snippets): its '
             'scores are in "Eight languages" below (results-8lang.md, report8.py).** The '
             'sections before it are the four-language set of 2,400 queries.\n')


# the embed_text of the headline: the loader's default (codevec-load --help)
HEADLINE_EMBED = 'fields=name,signature,doc,body max_bytes=500 words=name+all'
# what the other whole-corpus runs are compared with: the default before --embed-words
BASELINE_EMBED = 'fields=name,signature,doc,body max_bytes=1000 words=none'
# the model `make model` installs; runs with another model are keyed
# '<embed> model=<name>' (run.sh MODEL=...)
DEFAULT_MODEL = 'all-MiniLM-L6-v2'
# the base of the sub-corpus variant study (the same embed_text)
VARIANT_BASE = 'name_sig_doc_body_1000'


def embed_desc(e):
    """'fields=a,b max_bytes=N words=W' as 'a, b; N bytes; words W'."""
    if not e or e == 'loader-default':
        return "the loader's default"
    d = dict(x.split('=', 1) for x in e.split())
    return '%s; %s bytes%s%s' % (d.get('fields', '?').replace(',', ', '), d.get('max_bytes', '?'),
                                 '' if d.get('words', 'none') == 'none' else
                                 '; words %s' % d['words'],
                                 '; model %s' % d['model'] if 'model' in d else '')


def rr(r):
    return 1.0 / r if 0 < r <= 10 else 0.0


def paired_ci(qids, a, b, n=2000, seed=1):
    """MRR@10(a) - MRR@10(b) and its 95% paired bootstrap interval over queries."""
    import random
    d = [rr(a[q]) - rr(b[q]) for q in qids]
    rng = random.Random(seed)
    means = sorted(sum(d[rng.randrange(len(d))] for _ in d) / len(d) for _ in range(n))
    return sum(d) / len(d), means[int(n * .025)], means[int(n * .975)]


def ci_text(c):
    return '%+.3f (95%% CI %+.3f .. %+.3f)' % tuple(c)


def load_gz(p):
    with gzip.open(p, 'rt') as f:
        return json.load(f)


def modes_from_lists(d, queries, rrf_k=60, depth=100):
    """vector / keyword / hybrid ranks (top 10) from a lists file."""
    out = {'vector': {}, 'keyword': {}, 'hybrid': {}}
    for l in d['lists']:
        v = [x[0] for x in l['vec']]
        k = [x[0] for x in l['kw']]
        out['vector'][l['qid']] = rank_of(l['target'], v)
        out['keyword'][l['qid']] = rank_of(l['target'], k)
        out['hybrid'][l['qid']] = rank_of(l['target'], fuse(v, k, rrf_k, depth))
    return {m: metrics(queries, r) for m, r in out.items()}


def fmt(x):
    return '%.3f' % x


def table(rows, head):
    s = '| ' + ' | '.join(head) + ' |\n|' + '|'.join('---' if i == 0 else '---:'
                                                     for i in range(len(head))) + '|\n'
    for r in rows:
        s += '| ' + ' | '.join(str(c) for c in r) + ' |\n'
    return s


def git(*a):
    try:
        return subprocess.run(['git', '-C', HERE, *a], stdout=subprocess.PIPE, text=True,
                              stderr=subprocess.DEVNULL).stdout.strip()
    except OSError:
        return ''


def grid_tables(grid, n):
    """The rrf_k x depth table and the per-language table at depth 100 of a
    fusion grid ((rrf_k, depth) -> metrics) over n queries, as results.md parts."""
    rows = [['%d' % k] + [fmt(grid[(k, dep)]['all']['mrr10']) for dep in DEPTHS] for k in RRF_KS]
    out = ['MRR@10 (all %d queries) of hybrid by rrf_k (rows) and depth (columns):\n' % n,
           table(rows, ['rrf_k \\ depth'] + [str(x) for x in DEPTHS])]
    rows = []
    for k in RRF_KS:
        m = grid[(k, 100)]
        rows.append([str(k)] + [fmt(m[l]['mrr10']) for l in LANGS] +
                    [fmt(m['all']['mrr10']), fmt(m['all']['r1']), fmt(m['all']['r10'])])
    out += ['\nPer language at depth 100 (MRR@10; recall@1 and @10 overall):\n',
            table(rows, ['rrf_k'] + LANGS + ['all MRR@10', 'R@1', 'R@10'])]
    return out


def plot_sources(headline, base):
    """Per mode, the metrics the plot's right panel shows: the headline's
    code.search run (hybrid: rrf_k 10, depth 100) or, without one, base's."""
    return {m: (headline and next((r['metrics'] for r in headline['runs']
                                   if r['mode'] == m and (m != 'hybrid' or
                                                          (r['rrf_k'] == 10 and r['depth'] == 100))),
                                  None)) or base[m] for m in ('keyword', 'vector', 'hybrid')}


def plot(grid, base, src, by_search):
    """results.png: the fusion grid, and MRR@10 per language by mode (src)."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    for dep in DEPTHS:
        ax[0].plot(RRF_KS, [grid[(k, dep)]['all']['mrr10'] for k in RRF_KS],
                   marker='o', label='depth %d' % dep)
    ax[0].axhline(base['vector']['all']['mrr10'], color='k', ls='--', lw=.8,
                  label='vector only')
    ax[0].axhline(base['keyword']['all']['mrr10'], color='grey', ls=':', lw=.8,
                  label='keyword only')
    ax[0].set_xscale('symlog', linthresh=10)
    ax[0].set_xlabel('rrf_k (symlog scale)')
    ax[0].set_ylabel('MRR@10 (all queries)')
    ax[0].legend(fontsize=7)
    ax[0].set_title('hybrid: RRF constant and depth')
    modes = ['keyword', 'vector', 'hybrid']
    w = 0.27
    for i, m in enumerate(modes):
        ax[1].bar([j + (i - 1) * w for j in range(len(LANGS) + 1)],
                  [src[m][l]['mrr10'] for l in LANGS + ['all']], w, label=m)
    ax[1].set_xticks(range(len(LANGS) + 1))
    ax[1].set_xticklabels(LANGS + ['all'])
    ax[1].set_ylabel('MRR@10')
    ax[1].set_title('per language (code.search, headline)' if by_search else 'per language')
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(HERE, 'results.png'), dpi=110)
    return True


def main():
    queries = read_queries(os.path.join(HERE, 'queries.tsv.gz'))
    stats = json.load(open(os.path.join(HERE, 'corpus-stats.json')))
    timings = {}
    if os.path.exists(os.path.join(CACHE, 'timings.json')):
        timings = json.load(open(os.path.join(CACHE, 'timings.json')))
    res = dict(machine=dict(cpu=platform.processor() or platform.machine(),
                            cores=os.cpu_count(), commit=git('rev-parse', '--short', 'HEAD'),
                            dirty=bool(git('status', '--porcelain'))),
               timings=timings, corpus_stats=stats)
    # sections whose inputs are gone come from the results of the earlier run
    ep = os.path.join(HERE, 'results-earlier.json')
    earlier = json.load(open(ep)) if os.path.exists(ep) else {}
    md = []
    md.append('# Retrieval quality: results\n')
    md.append('Generated by `bench/quality/report.py` from the runs of `bench/quality/run.sh`; '
              'README.md says what the set is and how to reproduce it.\n')
    if os.path.exists(os.path.join(HERE, 'results-8lang.md')):
        md.append(PTR_8LANG)

    # ---------------------------------------------------------- headline
    # every whole-corpus code.search run in the cache, one per embed_text
    runs = {}
    for p in sorted(glob.glob(os.path.join(CACHE, 'search*.json'))):
        if os.path.basename(p).startswith(('search-main-extra', 'search-test')):
            continue
        s = json.load(open(p))
        if os.path.basename(p) == 'search.json':
            extra = os.path.join(CACHE, 'search-main-extra.json')
            if os.path.exists(extra):      # more hybrid settings, run later on the same database
                have = {(r['mode'], r['rrf_k'], r['depth']) for r in s['runs']}
                s['runs'] += [r for r in json.load(open(extra))['runs']
                              if (r['mode'], r['rrf_k'], r['depth']) not in have]
        key = s.get('embed') or 'loader-default'
        if s['corpus']['model'] != DEFAULT_MODEL:
            key += ' model=' + s['corpus']['model']
        runs[key] = s
    headline = runs.get(HEADLINE_EMBED) or (runs and runs[sorted(runs)[0]])
    res['search_runs'] = {e: dict(corpus=s['corpus'], queries=s['queries'], runs=[
        {k: v for k, v in r.items() if k != 'ranks'} for r in s['runs']]) for e, s in runs.items()}

    def mode_name(r):
        if r['mode'] != 'hybrid':
            return r['mode']
        w = r.get('keyword_weight', 1.0)       # runs before keyword_weight: 1
        return 'hybrid k=%d d=%d%s' % (r['rrf_k'], r['depth'], '' if w == 1.0 else ' w=%g' % w)

    def ranks(r):
        return {int(k): v for k, v in r['ranks'].items()}

    if headline:
        s = headline
        c = s['corpus']
        md.append('## Headline: code.search on the whole corpus\n')
        md.append('%d queries (%s) searched against all %d snippets of the corpus '
                  '(%s), docs stripped (`codevec-load --strip-docs`), model %s '
                  '(codevec.max_tokens %d), embed_text %s (%.0f bytes on average). Every number '
                  'is from `code.search(query, 10, mode => ...)` (hybrid: rrf_k %s, depth %s).\n' % (
                      s['queries'], ', '.join('%s %d' % kv for kv in sorted(s['query_languages'].items())),
                      c['snippets'], ', '.join('%s %d' % (l, v['snippets'])
                                               for l, v in sorted(c['per_language'].items())),
                      c['model'], c['max_tokens'], embed_desc(s.get('embed')),
                      c.get('avg_embed_text_bytes', 0),
                      ', '.join(str(x) for x in sorted({r['rrf_k'] for r in s['runs'] if r['mode'] == 'hybrid'})),
                      ', '.join(str(x) for x in sorted({r['depth'] for r in s['runs'] if r['mode'] == 'hybrid'}))))
        rows = []
        for r in s['runs']:
            m = r['metrics']
            for lang in LANGS + ['all']:
                if lang in m:
                    rows.append([r['mode'] + ('' if r['mode'] != 'hybrid' else
                                              ' (k=%d, depth %d%s)' % (
                                                  r['rrf_k'], r['depth'],
                                                  '' if r.get('keyword_weight', 1.0) == 1.0 else
                                                  ', keyword_weight %g' % r['keyword_weight'])),
                                 lang, m[lang]['n'], fmt(m[lang]['mrr10']),
                                 fmt(m[lang]['r1']), fmt(m[lang]['r10'])])
        md.append(table(rows, ['mode', 'language', 'queries', 'MRR@10', 'recall@1',
                               'recall@10']))
        res['targets'] = {}
        for e in sorted(runs, key=lambda e: e != HEADLINE_EMBED):
            rs = runs[e]['runs']
            by = {mode_name(r): r for r in rs}
            # code.search's defaults when the run has them
            hyb = (by.get('hybrid k=%d d=100 w=%g' % (DEFAULT_RRF_K, DEFAULT_KW)) or
                   by.get('hybrid k=10 d=100') or by.get('hybrid k=60 d=100'))
            if not ({'vector', 'keyword'} <= set(by) and hyb):
                continue
            v, k, h = (by['vector']['metrics']['all']['mrr10'], by['keyword']['metrics']['all']['mrr10'],
                       hyb['metrics']['all']['mrr10'])
            qids = sorted(ranks(by['vector']))
            c1 = paired_ci(qids, ranks(by['vector']), ranks(by['keyword']))
            c2 = paired_ci(qids, ranks(hyb), ranks(by['vector']))
            c3 = paired_ci(qids, ranks(hyb), ranks(by['keyword']))
            md.append('\nTargets of issue 7, embed_text %s%s: vector - keyword = %+.3f MRR@10 '
                      '(target >= +0.10: **%s**); %s - max(vector, keyword) = %+.3f (target > 0: '
                      '%s). Paired bootstrap over the %d queries (2,000 resamples): vector - keyword '
                      '%s; hybrid - vector %s; hybrid - keyword %s.\n' % (
                          embed_desc(e), ' (the headline)' if e == HEADLINE_EMBED else '',
                          v - k, 'met' if v - k >= 0.10 else 'NOT met', mode_name(hyb),
                          h - max(v, k), 'NOT met' if h <= max(v, k) else 'met' if min(
                              paired_ci(qids, ranks(hyb), ranks(by[max(('vector', 'keyword'),
                                  key=lambda x: by[x]['metrics']['all']['mrr10'])]))[1:]) > 0
                          else 'met by the point estimate, but its CI includes 0', len(qids),
                          ci_text(c1), ci_text(c2), ci_text(c3)))
            res['targets'][e] = dict(vector_minus_keyword=c1, hybrid_minus_vector=c2,
                                     hybrid_minus_keyword=c3, hybrid=mode_name(hyb))

    # ---------------------------------------------------------- models
    mruns = {e: r for e, r in runs.items() if e.startswith(HEADLINE_EMBED + ' model=')}
    if headline and mruns:
        md.append('\n## Models (the headline\'s embed_text, code.search)\n')
        md.append('The same corpus, queries and embed_text, loaded with another `codevec.model` '
                  '(`MODEL=name run.sh load search`). code-MiniLM-L6 is %s fine-tuned by '
                  '`make model-code` (tools/train-model/) on (doc sentence, code) pairs of Debian '
                  'packages that are not in this benchmark; no function (by code, docs blanked) '
                  'and no query of this benchmark is in its training pairs. The CI is a paired '
                  'bootstrap over the queries against %s in the same mode.\n' % (
                      DEFAULT_MODEL, DEFAULT_MODEL))
        base_by = {mode_name(r): r for r in headline['runs']}
        rows = []
        for e in [HEADLINE_EMBED] + sorted(mruns):
            for r in runs[e]['runs']:
                m = r['metrics']
                b = base_by.get(mode_name(r))
                ci = ''
                if e != HEADLINE_EMBED and b and r['mode'] != 'keyword':
                    ci = ci_text(paired_ci(sorted(ranks(r)), ranks(r), ranks(b)))
                rows.append([runs[e]['corpus']['model'], mode_name(r)] +
                            [fmt(m[l]['mrr10']) for l in LANGS] +
                            [fmt(m['all']['mrr10']), fmt(m['all']['r1']), fmt(m['all']['r10']),
                             '%.0f / %.0f' % (r['latency_ms']['p50'], r['latency_ms']['p95']), ci])
        md.append(table(rows, ['model', 'mode'] + LANGS + ['all MRR@10', 'R@1', 'R@10',
                                                         'latency p50 / p95 ms',
                                                         'vs %s (95%% CI)' % DEFAULT_MODEL]))

    # ---------------------------------------------------------- every embed_text, full corpus
    if runs:
        md.append('\n## Each embed_text on the whole corpus (code.search)\n')
        md.append('Each embed_text loaded into its own database with the same corpus and queries '
                  '(`EMBED_FIELDS=... EMBED_MAX_BYTES=... EMBED_WORDS=... run.sh load search`), '
                  'every number from code.search. Keyword mode does not depend on embed_text (the '
                  'same ranks in every database: a check). The CI is a paired bootstrap over the '
                  '2,400 queries against %s, same mode.\n' % embed_desc(BASELINE_EMBED))
        base = {(r['mode'], r['rrf_k'], r['depth']): r
                for r in runs.get(BASELINE_EMBED, {'runs': []})['runs']}
        rows = []
        for e in sorted(runs, key=lambda e: (e != HEADLINE_EMBED, e)):
            for r in runs[e]['runs']:
                m = r['metrics']
                b = base.get((r['mode'], r['rrf_k'], r['depth']))
                ci = ''
                if b and e != BASELINE_EMBED and r['mode'] != 'keyword':
                    ci = ci_text(paired_ci(sorted(ranks(r)), ranks(r), ranks(b)))
                rows.append([embed_desc(e), mode_name(r)] + [fmt(m[l]['mrr10']) for l in LANGS] +
                            [fmt(m['all']['mrr10']), fmt(m['all']['r1']), fmt(m['all']['r10']),
                             '%.0f / %.0f' % (r['latency_ms']['p50'], r['latency_ms']['p95']), ci])
        md.append(table(rows, ['embed_text', 'mode'] + LANGS + ['all MRR@10', 'R@1', 'R@10',
                                                              'latency p50 / p95 ms',
                                                              'vs %s (95%% CI)' % embed_desc(BASELINE_EMBED)]))

    # ---------------------------------------------------------- earlier whole-corpus runs
    if earlier.get('search'):
        md.append('\n## Earlier whole-corpus runs (results-earlier.json)\n')
        md.append('The first run of this benchmark (commit 86261a7; its per-query ranks were not '
                  'kept, so no paired CIs against the runs above), with the defaults of that time: '
                  'embed_text path, kind, name, signature, body at 1000 bytes, and name, '
                  'signature, body at 500 bytes as the alternative. Same corpus, queries and '
                  'model; its keyword mode is the same search as above.\n')
        rows = []
        for name, rs in [('path,kind,name,signature,body; 1000 bytes', earlier['search']['runs'])] + [
                (n.replace('name_signature_body_500', 'name,signature,body; 500 bytes'), rs)
                for n, rs in sorted(earlier.get('alternatives', {}).items())]:
            for r in rs:
                m = r['metrics']
                rows.append([name, mode_name(r)] + [fmt(m[l]['mrr10']) for l in LANGS] +
                            [fmt(m['all']['mrr10']), fmt(m['all']['r1']), fmt(m['all']['r10'])])
        md.append(table(rows, ['embed_text', 'mode'] + LANGS + ['all MRR@10', 'R@1', 'R@10']))
        t = earlier.get('targets', {})
        if t:
            md.append('\nThen: vector - keyword %s, hybrid(k=60) - vector %s (paired bootstrap).\n' % (
                ci_text(t['vector_minus_keyword']), ci_text(t['hybrid_minus_vector'])))

    # ---------------------------------------------------------- rrf grid
    lp = os.path.join(CACHE, 'lists.json.gz')
    if os.path.exists(lp):
        d = load_gz(lp)
        qs = [q for q in queries if q['qid'] in {l['qid'] for l in d['lists']}]
        base = modes_from_lists(d, qs, rrf_k=10)
        md.append('\n## Fusion: rrf_k and depth (plain-SQL lists, fused offline)\n')
        md.append('The vector and keyword lists of every query were fetched once to depth %d '
                  '(in the database of the headline\'s embed_text) '
                  'with the plain SQL that code.search runs (`eval.py lists`: `ORDER BY emb <=> '
                  'embed(q) LIMIT n`; `tsv @@ %s ORDER BY ts_rank DESC, id LIMIT n`), and '
                  'hybrid was computed for each (rrf_k, depth) exactly as code.search computes '
                  'it (score = sum of 1/(rrf_k + rank), ties by id). Vector %s, keyword %s, '
                  'plain RRF (10, 100), the default when this grid was made, %s MRR@10 this way%s.\n' % (
                      d['depth'], 'code.keyword_query(q)' if 'keyword_query' in d['keyword_query']
                      else 'OR of the lexemes of to_tsvector(\'%s\', q)' % d['keyword_config'],
                      fmt(base['vector']['all']['mrr10']), fmt(base['keyword']['all']['mrr10']),
                      fmt(base['hybrid']['all']['mrr10']),
                      '' if not headline else ' (code.search: %s)' % ', '.join(
                          '%s %s' % (r['mode'], fmt(r['metrics']['all']['mrr10']))
                          for r in headline['runs'] if r['mode'] != 'hybrid' or
                          (r['rrf_k'] == 10 and r['depth'] == 100))))
        grid = {}
        for k in RRF_KS:
            for dep in DEPTHS:
                ranks = {}
                for l in d['lists']:
                    ranks[l['qid']] = rank_of(l['target'], fuse(
                        [x[0] for x in l['vec']], [x[0] for x in l['kw']], k, dep))
                grid[(k, dep)] = metrics(qs, ranks)
        md.extend(grid_tables(grid, len(qs)))
        best = max(grid, key=lambda x: (round(grid[x]['all']['mrr10'], 4), -x[1]))
        md.append('\nBest: rrf_k = %d, depth = %d (MRR@10 %s; plain RRF 10/100, the default when this grid was made: %s).\n' % (
            best[0], best[1], fmt(grid[best]['all']['mrr10']), fmt(grid[(10, 100)]['all']['mrr10'])))
        rk_best, rk_def = {}, {}
        for l in d['lists']:
            v, k = [x[0] for x in l['vec']], [x[0] for x in l['kw']]
            rk_best[l['qid']] = rank_of(l['target'], fuse(v, k, best[0], best[1]))
            rk_def[l['qid']] = rank_of(l['target'], fuse(v, k, 10, 100))
        c = paired_ci(sorted(rk_def), rk_best, rk_def)
        md.append('Best - default (paired bootstrap): %s.\n' % ci_text(c))
        rk_vec = {l['qid']: rank_of(l['target'], [x[0] for x in l['vec']]) for l in d['lists']}
        md.append('Default (10, 100) - vector: %s; best - vector: %s.\n' % (
            ci_text(paired_ci(sorted(rk_def), rk_def, rk_vec)),
            ci_text(paired_ci(sorted(rk_def), rk_best, rk_vec))))
        for kk in (0, 5, 20, 60):
            rk_k = {}
            for l in d['lists']:
                rk_k[l['qid']] = rank_of(l['target'], fuse([x[0] for x in l['vec']],
                                                           [x[0] for x in l['kw']], kk, 100))
            md.append('rrf_k %d, depth 100 - default (10, 100): %s.\n' % (
                kk, ci_text(paired_ci(sorted(rk_def), rk_k, rk_def))))
        res['fusion_best_minus_default'] = c
        res['fusion_grid'] = {'%d/%d' % kd: {l: v for l, v in m.items()} for kd, m in grid.items()}
        res['fusion_best'] = dict(rrf_k=best[0], depth=best[1])
        res['lists_modes'] = base
        res['lists_timing'] = dict(vector_s_per_query=d['vector_s_per_query'],
                                   keyword_s_per_query=d['keyword_s_per_query'])
        src = plot_sources(headline, base)
        if plot(grid, base, src, bool(headline)):
            md.append('\n![MRR@10 by rrf_k and depth; per language by mode](results.png)\n')

    elif earlier.get('fusion_grid'):
        grid = {tuple(int(x) for x in kd.split('/')): m for kd, m in earlier['fusion_grid'].items()}
        base = earlier['lists_modes']
        md.append('\n## Fusion: rrf_k and depth (first run, results-earlier.json)\n')
        md.append('From the first run (its plain-SQL lists are not kept; they were made with the '
                  'embed_text of that time, path, kind, name, signature, body at 1000 bytes): the '
                  'vector and keyword lists of every query to depth 400, hybrid computed for each '
                  '(rrf_k, depth) exactly as code.search computes it (score = sum of 1/(rrf_k + '
                  'rank), ties by id). Vector %s, keyword %s, hybrid(60, 100) %s MRR@10 this way; '
                  'code.search gave the same. rrf_k 10 became code.search\'s default from this.\n' % (
                      fmt(base['vector']['all']['mrr10']), fmt(base['keyword']['all']['mrr10']),
                      fmt(base['hybrid']['all']['mrr10'])))
        md.extend(grid_tables(grid, 2400))
        best = earlier['fusion_best']
        md.append('\nBest: rrf_k = %d, depth = %d; best - (60, 100), paired bootstrap: %s.\n' % (
            best['rrf_k'], best['depth'], ci_text(earlier['fusion_best_minus_default'])))
        for kk in ('fusion_best', 'fusion_best_minus_default', 'fusion_grid', 'lists_modes',
                   'lists_timing'):
            res[kk] = earlier[kk]
        src = plot_sources(headline, base)
        if plot(grid, base, src, bool(headline)):
            md.append('\n![MRR@10 by rrf_k and depth (first run); per language by mode '
                      '(headline, hybrid rrf_k 10)](results.png)\n')

    # ---------------------------------------------------------- keyword weight, per model
    wl = [(p, load_gz(p)) for p in sorted(glob.glob(os.path.join(CACHE, 'lists*.json.gz')))]
    if wl:
        md.append('\n## Fusion with a keyword weight, per model (plain-SQL lists, fused offline)\n')
        md.append('code.search\'s hybrid score is 1/(rrf_k + vector rank) + keyword_weight/(rrf_k '
                  '+ keyword rank) (weighted RRF; keyword_weight 1 is plain RRF). MRR@10 at depth '
                  '100 by keyword_weight (rows) and rrf_k (columns), from each model\'s lists (the '
                  'same plain SQL as above, to depth 400). **Held out**: the setting is chosen on '
                  'the odd-numbered queries and scored on the even ones, and the other way round; '
                  'the held-out MRR@10 of the two halves together is what a setting picked on this '
                  'benchmark can be expected to give on new queries.\n')
        res['weight_grids'] = {}
        for p, d in wl:
            model = d['corpus']['model']
            L = d['lists']
            qs = [q for q in queries if q['qid'] in {l['qid'] for l in L}]

            def ranks_for(k, w, sel=None):
                return {l['qid']: rank_of(l['target'], fuse([x[0] for x in l['vec']],
                                                            [x[0] for x in l['kw']], k, 100,
                                                            keyword_weight=w))
                        for l in L if sel is None or l['qid'] % 2 == sel}
            mean = lambda rk: sum(rr(v) for v in rk.values()) / len(rk)
            grid = {(k, w): ranks_for(k, w) for k in FUSE_KS for w in FUSE_WS}
            vec = {l['qid']: rank_of(l['target'], [x[0] for x in l['vec']]) for l in L}
            rows = [['%g' % w] + [fmt(mean(grid[(k, w)])) for k in FUSE_KS] for w in FUSE_WS]
            md.append('\n**%s** (vector %s, keyword %s; `%s`):\n' % (
                model, fmt(mean(vec)),
                fmt(mean({l['qid']: rank_of(l['target'], [x[0] for x in l['kw']]) for l in L})),
                os.path.basename(p)))
            md.append(table(rows, ['keyword_weight \\ rrf_k'] + [str(k) for k in FUSE_KS]))
            held = {}
            picks = []
            for train, test in ((1, 0), (0, 1)):
                best = max(grid, key=lambda kw: (round(mean({q: r for q, r in grid[kw].items()
                                                              if q % 2 == train}), 4), -kw[0], kw[1]))
                picks.append(best)
                held.update({q: r for q, r in grid[best].items() if q % 2 == test})
            dflt = grid[(DEFAULT_RRF_K, DEFAULT_KW)]
            c_held = paired_ci(sorted(held), held, vec)
            c_def = paired_ci(sorted(dflt), dflt, vec)
            c_plain = paired_ci(sorted(dflt), grid[(DEFAULT_RRF_K, 1.0)], vec)
            md.append('\nChosen on the odd queries: rrf_k %d, keyword_weight %g; on the even: '
                      'rrf_k %d, keyword_weight %g. Held-out hybrid MRR@10 %s, minus vector %s. '
                      'code.search\'s default (rrf_k %d, keyword_weight %g): %s, minus vector %s; '
                      'plain RRF at rrf_k %d: minus vector %s.\n' % (
                          picks[0][0], picks[0][1], picks[1][0], picks[1][1], fmt(mean(held)),
                          ci_text(c_held), DEFAULT_RRF_K, DEFAULT_KW, fmt(mean(dflt)),
                          ci_text(c_def), DEFAULT_RRF_K, ci_text(c_plain)))
            res['weight_grids'][model] = dict(
                grid={'%d/%g' % kw: mean(r) for kw, r in grid.items()}, picks=picks,
                held_out=mean(held), held_out_minus_vector=c_held,
                default=mean(dflt), default_minus_vector=c_def)

    # ---------------------------------------------------------- keyword semantics
    kws = sorted(glob.glob(os.path.join(CACHE, 'kw-*.lists.json.gz')))
    if kws and os.path.exists(lp):
        d = load_gz(lp)
        vec = {l['qid']: [x[0] for x in l['vec']] for l in d['lists']}
        rows = []
        res['keyword_variants'] = {}
        for p in kws:
            kd = load_gz(p)
            ranks_k, ranks_h = {}, {}
            for l in kd['lists']:
                k = [x[0] for x in l['kw']]
                ranks_k[l['qid']] = rank_of(l['target'], k)
                ranks_h[l['qid']] = rank_of(l['target'], fuse(vec[l['qid']], k, 60, 100))
            qs = [q for q in queries if q['qid'] in ranks_k]
            mk, mh = metrics(qs, ranks_k), metrics(qs, ranks_h)
            rows.append([kd['name'], '`%s`' % kd['describe']] + [fmt(mk[l]['mrr10']) for l in LANGS] +
                        [fmt(mk['all']['mrr10']), fmt(mk['all']['r10']), fmt(mh['all']['mrr10'])])
            res['keyword_variants'][kd['name']] = dict(describe=kd['describe'], keyword=mk, hybrid=mh)
        md.append('\n## Keyword query semantics\n')
        md.append('code.search has one keyword semantics (the OR of the query\'s lexemes, '
                  'ranked by ts_rank). These alternatives ran as plain SQL over the same tsv '
                  'column; hybrid = RRF(60, depth 100) with the same vector lists.\n')
        md.append(table(rows, ['variant', 'tsquery / rank'] + ['%s MRR' % l for l in LANGS] +
                        ['all MRR@10', 'all R@10', 'hybrid MRR@10']))

    elif earlier.get('keyword_variants'):
        rows = []
        for name, kv in sorted(earlier['keyword_variants'].items()):
            mk, mh = kv['keyword'], kv['hybrid']
            rows.append([name, '`%s`' % kv['describe']] + [fmt(mk[l]['mrr10']) for l in LANGS] +
                        [fmt(mk['all']['mrr10']), fmt(mk['all']['r10']), fmt(mh['all']['mrr10'])])
        res['keyword_variants'] = earlier['keyword_variants']
        md.append('\n## Keyword query semantics (first run, results-earlier.json)\n')
        md.append('code.search has one keyword semantics (the OR of the query\'s lexemes, '
                  'ranked by ts_rank). These alternatives ran as plain SQL over the same tsv '
                  'column in the first run (tsv does not depend on embed_text, so they still hold); '
                  'hybrid = RRF(60, depth 100) with that run\'s vector lists.\n')
        md.append(table(rows, ['variant', 'tsquery / rank'] + ['%s MRR' % l for l in LANGS] +
                        ['all MRR@10', 'all R@10', 'hybrid MRR@10']))

    # ---------------------------------------------------------- embed_text variants
    vs = sorted(glob.glob(os.path.join(CACHE, 'variants', '*.lists.json.gz')))
    if vs:
        sq = read_queries(os.path.join(CACHE, 'variants', 'sub-queries.tsv.gz'))
        rows = []
        all_vr = {}
        res['embed_variants'] = {}
        for p in vs:
            d = load_gz(p)
            v = d['variant']
            m = modes_from_lists(d, sq)
            m10 = modes_from_lists(d, sq, rrf_k=10)
            vr = {l['qid']: rank_of(l['target'], [x[0] for x in l['vec']]) for l in d['lists']}
            all_vr[v['name']] = vr
            res['embed_variants'][v['name']] = dict(variant=v, metrics=m, hybrid_rrf10=m10['hybrid'])
            rows.append((m['vector']['all']['mrr10'], v['name'], [
                v['fields'], str(v['max_bytes']), v.get('words', 'none'), str(v['max_tokens']),
                '%.0f' % v['avg_embed_text_bytes']] +
                [fmt(m['vector'][l]['mrr10']) for l in LANGS] +
                [fmt(m['vector']['all']['mrr10']), None, fmt(m['vector']['all']['r1']),
                 fmt(m['vector']['all']['r10']), fmt(m['keyword']['all']['mrr10']),
                 fmt(m['hybrid']['all']['mrr10']), fmt(m10['hybrid']['all']['mrr10']),
                 '%d in %.0f s' % (v['embedded'], v['embed_seconds']) if v['embedded'] else 'cached']))
        rows.sort(key=lambda x: -x[0])
        for _, name, r in rows:
            if VARIANT_BASE in all_vr and name != VARIANT_BASE:
                c = paired_ci(sorted(all_vr[VARIANT_BASE]), all_vr[name], all_vr[VARIANT_BASE])
                r[r.index(None)] = '%+.3f (%+.3f..%+.3f)' % c
                res['embed_variants'][name]['vector_minus_base'] = c
            else:
                r[r.index(None)] = '(base)' if name == VARIANT_BASE else ''
        n = d['corpus']['snippets']
        md.append('\n## What to embed: embed_text variants (sub-corpus)\n')
        md.append('Each variant re-embeds a stratified sub-corpus: %d queries (%s per language) '
                  'against %d snippets (%d per language: the targets and random others), loaded '
                  'with `--strip-docs --embed-fields=F --embed-max-bytes=B --embed-words=W` and '
                  'codevec.max_tokens T. Vector MRR@10 is higher here than on the whole corpus '
                  '(fewer distractors); compare variants with each other, not with the headline. '
                  'Per-language columns and "vector MRR@10" are vector mode; keyword MRR@10 is the '
                  'same for every variant (tsv does not depend on embed_text: a check); hybrid = RRF '
                  'with rrf_k 60 or 10, depth 100, over the same sub-corpus. The CI is a paired '
                  'bootstrap over the sub-queries against the base: name, signature, doc, body at '
                  '1000 bytes, words none (the loader\'s default before --embed-words; doc is '
                  'empty here).\n' % (len(sq), len(sq) // 4, n, n // 4))
        md.append(table([r for _, _, r in rows],
                        ['fields', 'bytes', 'words', 'max_tokens', 'avg bytes'] +
                        ['%s' % l for l in LANGS] + ['vector MRR@10', 'vs base (95% CI)',
                                                     'R@1', 'R@10', 'keyword MRR@10',
                                                     'hybrid k=60', 'hybrid k=10',
                                                     'embedded (new texts)']))
    old_vs = {k: v for k, v in earlier.get('embed_variants', {}).items()
              if k not in res.get('embed_variants', {})}
    if old_vs:
        rows = []
        for name, e in sorted(old_vs.items(), key=lambda x: -x[1]['metrics']['vector']['all']['mrr10']):
            v, m, m10 = e['variant'], e['metrics'], e['hybrid_rrf10']
            c = e.get('vector_minus_default')
            rows.append([v['fields'], str(v['max_bytes']), str(v['max_tokens']),
                         '%.0f' % v['avg_embed_text_bytes']] + [fmt(m['vector'][l]['mrr10']) for l in LANGS] +
                        [fmt(m['vector']['all']['mrr10']),
                         '%+.3f (%+.3f..%+.3f)' % tuple(c) if c else '(default then)',
                         fmt(m['vector']['all']['r1']), fmt(m['vector']['all']['r10']),
                         fmt(m['hybrid']['all']['mrr10']), fmt(m10['all']['mrr10'])])
        res['embed_variants_earlier'] = old_vs
        md.append('\nEarlier variants on the same sub-corpus (first run, results-earlier.json; '
                  'the CI there is against path, kind, name, signature, body at 1000 bytes, the '
                  'default then). The same sub-corpus and queries: name, signature, doc, body at '
                  '500 and 1000 bytes above reproduce that run\'s name, signature, body rows to the '
                  'last digit (doc is empty here).\n')
        md.append(table(rows, ['fields', 'bytes', 'max_tokens', 'avg bytes'] + LANGS +
                        ['vector MRR@10', 'vs default then (95% CI)', 'R@1', 'R@10',
                         'hybrid k=60', 'hybrid k=10']))

    # ---------------------------------------------------------- corpus
    md.append('\n## The set\n')
    rows = []
    for l, v in stats['languages'].items():
        rows.append([l, v['repos'], v['snippets'], v['documented'], v['eligible_queries'],
                     v['queries']])
    rows.append(['all', sum(v['repos'] for v in stats['languages'].values()), stats['snippets'],
                 sum(v['documented'] for v in stats['languages'].values()),
                 sum(v['eligible_queries'] for v in stats['languages'].values()),
                 stats['queries']])
    md.append(table(rows, ['language', 'projects', 'snippets (all are distractors)',
                           'with a doc', 'usable queries', 'queries (sampled)']))
    if timings:
        md.append('\n## Timings (this machine: %d cores shared with other work, no GPU)\n' % (
            os.cpu_count()))
        md.append(table([[k, '%.0f s' % v] for k, v in timings.items()], ['step', 'seconds']))
    if earlier.get('timings'):
        md.append('\nThe first run (results-earlier.json):\n')
        md.append(table([[k, '%.0f s' % v] for k, v in earlier['timings'].items()],
                        ['step', 'seconds']))
    notes = os.path.join(CACHE, 'notes.md')
    if os.path.exists(notes):
        md.append('\n' + open(notes).read().strip() + '\n')
    r8 = os.path.join(HERE, 'results-8lang.md')
    if os.path.exists(r8):
        # the eight-language set's tables (issues 14 and 20), written by report8.py
        md.append('\n' + open(r8).read().strip() + '\n')
    r4 = os.path.join(HERE, 'results-4lang.md')
    if os.path.exists(r4):
        # the four-language set again (issue 27's anchor), written by report4.py
        md.append('\n' + open(r4).read().strip() + '\n')
    ood = os.path.join(HERE, 'ood', 'results.md')
    if os.path.exists(ood):
        # issue 27's out-of-distribution tables, written by ood/ (not by this run);
        # its relative links are ood/'s, so they are rebased to this folder
        md.append('\n' + re.sub(r'\]\((?![a-z]+:|#|/|\.\./)([^)\s]+)\)', r'](ood/\1)',
                                open(ood).read().strip()) + '\n')
    md.append('\nReport generated at commit %s%s. Machine: Debian 12 (x86-64), %d cores shared '
              'with other work, no GPU, PostgreSQL 15.\n' % (
                  res['machine']['commit'], ' (work tree with uncommitted changes)'
                  if res['machine']['dirty'] else '', os.cpu_count()))

    with open(os.path.join(HERE, 'results.md'), 'w') as f:
        f.write('\n'.join(md))
    with open(os.path.join(HERE, 'results.json'), 'w') as f:
        json.dump(res, f, indent=1, default=str)
    print('results.md, results.json written')


if __name__ == '__main__':
    main()
