#!/usr/bin/env python3
"""bench/quality/subcorpus.py — another encoder configuration (a model, a
CPU precision) against the benchmark database's own vectors, paired, on a
per-language-stratified sub-corpus: for when the other configuration
cannot embed the whole corpus in the time there is (issue 20: int8 against
fp32, MRR@10 within 0.005; issue 14: the shipped model against
all-MiniLM-L6-v2).

Both sides go through the same embed(); the other side differs only by
codevec.model and/or codevec.cpu_precision, set per session.  The database
is one `run.sh load` made and embedded with the shipped default (int8); the
other side's vectors are computed read-only beside it:

  subcorpus.py embed --out DIR [--model M] [--precision P]
                     [--worker I --workers N] [--seconds S]
        embed(embed_text[]) of the snippets in a fixed order: every
        query's target first, then all other snippets in a seeded random
        order interleaved across languages in proportion to their size, so
        that whatever prefix is done when time runs out (--seconds) is a
        per-language-stratified random sample of the corpus.  Worker I of N
        takes every N-th batch; each appends "id<TAB>vector" lines to
        DIR/vec-wI.tsv (a rerun continues after what is there; DIR/settings.json
        records the model and precision).
  subcorpus.py score --dir DIR --out JSON [--md MD] [--title T]
        the sub-corpus = the snippets DIR has a vector for; side A is the
        database's emb of the same snippets.  Every query embedded on both
        sides; the target's rank within the sub-corpus on each (exact
        cosine, numpy float64, ties for the target); MRR@10 per language,
        overall, test half (even qids), with the paired bootstrap CI of
        A - B; and the cosine of each snippet's A vector to its B vector
        (issue 20's fidelity measure, when B is the same model at fp32).

The sub-corpus is smaller than the full corpus, so both MRRs are higher than
the full-corpus figures; the paired difference is what this measures.
Connection from libpq's PG* variables.
"""

import argparse
import collections
import glob
import json
import os
import random
import sys
import time

import numpy as np
import psycopg

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from eval import read_queries, resolve_targets  # noqa: E402
from report8 import LANGS, boot, rr  # noqa: E402

SEED = 20261204


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def parse_vec(s):
    return np.array(s[1:-1].split(','), dtype=np.float32)


def order(conn, queries):
    """Snippet ids: targets first, then the rest stratified and shuffled."""
    with conn.cursor() as cur:
        cur.execute("SELECT s.id, f.language FROM code.snippets s JOIN code.files f"
                    " ON f.id = s.file_id ORDER BY s.id")
        rows = cur.fetchall()
    targets = sorted({q['target'] for q in queries})
    tset = set(targets)
    by = collections.defaultdict(list)
    for i, lang in rows:
        if i not in tset:
            by[lang].append(i)
    rng = random.Random(SEED)
    keyed = []
    for lang in sorted(by):
        ids = by[lang]
        rng.shuffle(ids)
        keyed += [((k + rng.random()) / len(ids), i) for k, i in enumerate(ids)]
    keyed.sort()
    return targets + [i for _, i in keyed]


def side_b(cur, model, precision):
    """Session settings of side B (None: the database's)."""
    if model:
        cur.execute("SELECT set_config('codevec.model', %s, false)", (model,))
    if precision:
        cur.execute("SELECT set_config('codevec.cpu_precision', %s, false)", (precision,))


def cmd_embed(a):
    conn = psycopg.connect(autocommit=True)
    queries = resolve_targets(conn, read_queries(a.queries))
    ids = order(conn, queries)
    os.makedirs(a.out, exist_ok=True)
    path = os.path.join(a.out, 'vec-w%d.tsv' % a.worker)
    done = set()
    if os.path.exists(path):
        done = {int(l.split('\t', 1)[0]) for l in open(path)}
    cur = conn.cursor()
    side_b(cur, a.model, a.precision)
    cur.execute("SELECT name, current_setting('codevec.cpu_precision'), sha256, blas"
                " FROM codevec_model_info()")
    model, prec, sha, blas = cur.fetchone()
    with open(os.path.join(a.out, 'settings.json'), 'w') as f:
        json.dump(dict(model=a.model or None, model_name=model, cpu_precision=prec,
                       model_sha256=sha, encoder=blas), f)
    t0 = time.time()
    n = 0
    with open(path, 'a') as f:
        for b, s in enumerate(range(0, len(ids), a.batch)):
            if b % a.workers != a.worker:
                continue
            batch = [i for i in ids[s:s + a.batch] if i not in done]
            if not batch:
                continue
            if a.seconds and time.time() - t0 > a.seconds:
                break
            cur.execute("SELECT x.id, x.e::text FROM unnest(%s::bigint[],"
                        " embed((SELECT array_agg(s.embed_text ORDER BY o.n) FROM"
                        " unnest(%s::bigint[]) WITH ORDINALITY o(id, n)"
                        " JOIN code.snippets s ON s.id = o.id))) x(id, e)", (batch, batch))
            for i, e in cur.fetchall():
                f.write('%d\t%s\n' % (i, e))
            f.flush()
            n += len(batch)
            if b % (20 * a.workers) == a.worker:
                log('worker %d: %d snippets, %.1f/s' % (a.worker, n, n / (time.time() - t0)))
    log('worker %d: %d snippets in %.0f s' % (a.worker, n, time.time() - t0))


def embed_queries(conn, queries, settings):
    """The queries' vectors, L2-normalised, on a fresh connection with settings (or the database's)."""
    c2 = psycopg.connect(autocommit=True)
    cur = c2.cursor()
    if settings:
        side_b(cur, settings.get('model'), settings['cpu_precision'])
    out = []
    for q in queries:
        cur.execute("SELECT embed(%s)::text", (q['query'],))
        out.append(parse_vec(cur.fetchone()[0]))
    c2.close()
    m = np.vstack(out).astype(np.float64)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def ranks(qm, dm, tpos):
    out = []
    for s in range(0, len(qm), 128):
        sim = qm[s:s + 128] @ dm.T
        for j in range(sim.shape[0]):
            row = sim[j]
            out.append(int((row > row[tpos[s + j]]).sum()) + 1)
    return out


def cmd_score(a):
    f32 = {}
    sb = json.load(open(os.path.join(a.dir, 'settings.json')))
    for p in sorted(glob.glob(os.path.join(a.dir, 'vec-w*.tsv'))):
        for l in open(p):
            i, e = l.rstrip('\n').split('\t')
            f32[int(i)] = e
    conn = psycopg.connect(autocommit=True)
    queries = resolve_targets(conn, read_queries(a.queries))
    missing = [q['qid'] for q in queries if q['target'] not in f32]
    if missing:
        sys.exit('%d targets have no vector yet' % len(missing))
    ids = sorted(f32)
    cur = conn.cursor()
    cur.execute("SELECT s.id, s.emb::text, f.language FROM code.snippets s JOIN code.files f"
                " ON f.id = s.file_id WHERE s.id = ANY(%s) ORDER BY s.id", (ids,))
    rows = cur.fetchall()
    assert [r[0] for r in rows] == ids
    d8 = np.vstack([parse_vec(r[1]) for r in rows]).astype(np.float64)
    d32 = np.vstack([parse_vec(f32[i]) for i in ids]).astype(np.float64)
    langs = collections.Counter(r[2] for r in rows)
    cur.execute("SELECT count(*) FROM code.snippets")
    total = cur.fetchone()[0]
    cur.execute("SELECT name, current_setting('codevec.cpu_precision'), sha256, blas"
                " FROM codevec_model_info()")
    model, default_prec, sha, blas = cur.fetchone()
    sa = dict(model=model, cpu_precision=default_prec, model_sha256=sha, encoder=blas)
    n8 = np.linalg.norm(d8, axis=1)
    n32 = np.linalg.norm(d32, axis=1)
    cos = (d8 * d32).sum(1) / (n8 * n32)
    d8 /= n8[:, None]
    d32 /= n32[:, None]
    t0 = time.time()
    if a.a_queries:
        q8 = np.load(a.a_queries).astype(np.float64)
        assert q8.shape[0] == len(queries)
        q8 /= np.linalg.norm(q8, axis=1, keepdims=True)
    else:
        q8 = embed_queries(conn, queries, None)
    q32 = embed_queries(conn, queries, sb)
    qcos = (q8 * q32).sum(1)
    log('queries embedded on both sides (%.0f s)' % (time.time() - t0))
    pos = {i: k for k, i in enumerate(ids)}
    tpos = [pos[q['target']] for q in queries]
    r8 = ranks(q8, d8, tpos)
    r32 = ranks(q32, d32, tpos)
    same_model = sa['model_sha256'] == sb['model_sha256']
    res = dict(a=sa, b=sb, title=a.title,
               sub_corpus=len(ids), corpus=total,
               sub_corpus_per_language=dict(sorted(langs.items())), queries=len(queries),
               snippet_cosine_a_b=dict(
                   n=len(ids), min=float(cos.min()), mean=float(cos.mean()),
                   p001=float(np.quantile(cos, 0.001)), p01=float(np.quantile(cos, 0.01)),
                   below_0_99=int((cos < 0.99).sum()), below_0_999=int((cos < 0.999).sum())),
               query_cosine_a_b=dict(n=len(queries), min=float(qcos.min()),
                                           mean=float(qcos.mean())),
               same_rank=sum(x == y for x, y in zip(r8, r32)),
               same_mrr_term=sum(rr(x) == rr(y) for x, y in zip(r8, r32)),
               mrr10={}, a_minus_b={})
    for half in ('all', 'test'):
        res['mrr10'][half] = {}
        res['a_minus_b'][half] = {}
        for lang in LANGS + ['all']:
            sel = [k for k, q in enumerate(queries) if (lang == 'all' or q['language'] == lang)
                   and (half == 'all' or q['qid'] % 2 == 0)]
            a8 = [rr(r8[k]) for k in sel]
            a32 = [rr(r32[k]) for k in sel]
            res['mrr10'][half][lang] = dict(n=len(sel), a=float(np.mean(a8)), b=float(np.mean(a32)))
            res['a_minus_b'][half][lang] = boot(a8, a32)
    with open(a.out, 'w') as f:
        json.dump(res, f, indent=1)
    if a.md:
        def desc(x):
            return '%s at %s (sha256 %s…)' % (x.get('model_name', x['model']), x['cpu_precision'],
                                              x['model_sha256'][:12])
        la, lb = a.label_a, a.label_b
        md = ['### %s\n' % (a.title or 'A - B on a stratified sub-corpus'),
              'A = %s, the benchmark database\'s vectors; B = %s, embedded by the same `embed()` '
              'with only `codevec.model` / `codevec.cpu_precision` set (`subcorpus.py`). B could not '
              'embed all %d snippets in the time this run had, so both are compared on the largest '
              'per-language-stratified random sub-corpus that fitted: **%d snippets** (every '
              'query\'s target plus a seeded random sample of the rest, each language in '
              'proportion: %s). All %d queries, embedded on each side. With fewer distractors '
              'MRR@10 is higher than on the whole corpus; the paired difference is the measure.\n' % (
                  desc(sa), desc(sb), total, len(ids),
                  ', '.join('%s %d' % kv for kv in sorted(langs.items())), len(queries))]
        rows = []
        for lang in LANGS + ['all']:
            m_all = res['mrr10']['all'][lang]
            rows.append('| %s | %d | %.4f | %.4f | %+.4f (%+.4f..%+.4f) | %+.4f (%+.4f..%+.4f) |' % (
                (lang, m_all['n'], m_all['a'], m_all['b']) +
                tuple(res['a_minus_b']['all'][lang]) + tuple(res['a_minus_b']['test'][lang])))
        md.append(('| language | queries | %s | %s | %s - %s (95%% CI), all queries | '
                   '%s - %s, test half |\n|---|---:|---:|---:|---:|---:|\n' % (
                       la, lb, la, lb, la, lb)) + '\n'.join(rows) + '\n')
        d = res['a_minus_b']['all']['all']
        c = res['snippet_cosine_a_b']
        line = '\nOverall %s - %s = %+.4f (95%% CI %+.4f..%+.4f)' % (la, lb, d[0], d[1], d[2])
        if same_model:
            line += ': %s. The target\'s rank is the same on both sides for %d of %d queries (the ' \
                    'MRR@10 term for %d). Cosine of %s to %s vectors over these %d real snippets: ' \
                    'min %.5f, mean %.6f, 0.1%% quantile %.5f, %d below 0.99, %d below 0.999; over ' \
                    'the %d queries: min %.5f, mean %.6f' % (
                        ('within 0.005 (met), CI inside ±0.005' if max(abs(d[1]), abs(d[2])) <= 0.005
                         else 'within 0.005 by the point estimate (met); the CI reaches past ±0.005')
                        if abs(d[0]) <= 0.005 else '**not within 0.005**',
                        res['same_rank'], len(queries), res['same_mrr_term'], la, lb, c['n'], c['min'],
                        c['mean'], c['p001'], c['below_0_99'], c['below_0_999'],
                        res['query_cosine_a_b']['n'], res['query_cosine_a_b']['min'],
                        res['query_cosine_a_b']['mean'])
        md.append(line + '.\n')
        with open(a.md, 'w') as f:
            f.write('\n'.join(md))
    log('sub-corpus %d, same rank %d' % (res['sub_corpus'], res['same_rank']))
    log('A - B all: %+.4f (%+.4f..%+.4f)' % tuple(res['a_minus_b']['all']['all']))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    s = sub.add_parser('embed')
    s.add_argument('--out', required=True)
    s.add_argument('--worker', type=int, default=0)
    s.add_argument('--workers', type=int, default=1)
    s.add_argument('--batch', type=int, default=32)
    s.add_argument('--seconds', type=float, default=0, help='stop after this long (0: never)')
    s.add_argument('--model', help="side B's codevec.model (default: the database's)")
    s.add_argument('--precision', help="side B's codevec.cpu_precision (default: the database's)")
    s.add_argument('--queries', default=os.path.join(HERE, 'queries.tsv.gz'))
    s = sub.add_parser('score')
    s.add_argument('--dir', required=True)
    s.add_argument('--out', required=True)
    s.add_argument('--md')
    s.add_argument('--title')
    s.add_argument('--a-queries', help="side A's query vectors from fastrank.py --save-queries (same database)")
    s.add_argument('--label-a', default='A')
    s.add_argument('--label-b', default='B')
    s.add_argument('--queries', default=os.path.join(HERE, 'queries.tsv.gz'))
    a = ap.parse_args()
    dict(embed=cmd_embed, score=cmd_score)[a.cmd](a)


if __name__ == '__main__':
    main()
