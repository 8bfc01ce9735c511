#!/usr/bin/env python3
"""bench/quality/fastrank.py — every query's vector, keyword and hybrid rank
from a loaded, embedded benchmark database, without running code.search
4,800 times per mode.

On 106,013 snippets code.search takes a few hundred milliseconds a query
on this machine's CPU (an exact scan of every vector, then the fusion), so
three modes of two models through code.search would take hours.  This
computes the same lists:

  vector   embed(query) in the database (the function code.search calls,
           at the database's codevec.model and codevec.cpu_precision), every
           snippet's emb read once (codevec's text output is the shortest
           decimal that round-trips the float32), cosine similarity in
           float64 with numpy over the whole corpus: the exact ranking that
           code.search's vector mode (ORDER BY emb <=> embed(query)) makes
           without an approximate index.  The target's rank is 1 + the
           number of snippets scored strictly higher (a tie counts for the
           target; ties are rare: equal embed_texts only).
  keyword  code.search(query, depth, mode => 'keyword') itself (BM25, no
           model involved).
  hybrid   code.search's weighted RRF of the top `depth` of both lists:
           1/(rrf_k + vector rank) + keyword_weight/(rrf_k + keyword rank),
           ties by id (eval.fuse), for every (rrf_k, keyword_weight) asked;
           the first pair is the headline (code.search's defaults 2, 0.5).

  fastrank.py ranks --out R.json.gz     (libpq PG* variables)
  fastrank.py check R.json.gz [--per-language N]
        N queries per language (seeded) through code.search itself in vector
        and hybrid mode (at the first rrf_k / keyword_weight): how many have
        the same top 10 and the same target rank as R.json.gz.

Output (gzip JSON): corpus info, per query qid, language, target, its
vector rank over the whole corpus (uncapped), the top `depth` ids of both
lists, and ranks (top 10, 0 = not there) per mode and fusion setting.
"""

import argparse
import collections
import gzip
import json
import os
import random
import sys
import time

import numpy as np
import psycopg

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from eval import corpus_info, fuse, rank_of, read_queries, resolve_targets  # noqa: E402


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def parse_vec(s):
    return np.array(s[1:-1].split(','), dtype=np.float32)


def read_embeddings(conn):
    """ids (int64) and the L2-normalised float64 matrix of every embedded snippet."""
    ids, rows = [], []
    with conn.transaction(), conn.cursor(name='embs') as cur:
        cur.itersize = 5000
        cur.execute("SELECT id, emb::text FROM code.snippets WHERE emb IS NOT NULL ORDER BY id")
        for i, e in cur:
            ids.append(i)
            rows.append(parse_vec(e))
    m = np.vstack(rows).astype(np.float64)
    m /= np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-30)
    return np.array(ids, dtype=np.int64), m


def settings(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT current_setting('codevec.model'), current_setting('codevec.cpu_precision', true),"
                    " current_setting('codevec.device', true), (SELECT sha256 FROM codevec_model_info()),"
                    " (SELECT name FROM codevec_model_info())")
        model, prec, dev, sha, name = cur.fetchone()
        cur.execute("SELECT version()")
        ver = cur.fetchone()[0]
    return dict(model=model, model_name=name, cpu_precision=prec, device=dev, model_sha256=sha,
                server=ver)


def cmd_ranks(a):
    conn = psycopg.connect(autocommit=True)
    queries = resolve_targets(conn, read_queries(a.queries))
    info = dict(corpus_info(conn), **settings(conn))
    fusions = [(int(k), float(w)) for k in a.rrf_k.split(',') for w in a.keyword_weight.split(',')]
    t0 = time.time()
    qconn = conn
    if a.vectors:
        # another configuration's vectors of these snippets (subcorpus.py embed over the
        # whole corpus): the snippets' from its files, the queries' embedded with its settings
        import glob
        from subcorpus import side_b
        sb = json.load(open(os.path.join(a.vectors, 'settings.json')))
        vecs = {}
        for p in sorted(glob.glob(os.path.join(a.vectors, 'vec-w*.tsv'))):
            for l in open(p):
                i, e = l.rstrip('\n').split('\t')
                vecs[int(i)] = e
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM code.snippets WHERE emb IS NOT NULL ORDER BY id")
            all_ids = [r[0] for r in cur.fetchall()]
        assert sorted(vecs) == all_ids, 'the vectors do not cover the corpus'
        ids = np.array(all_ids, dtype=np.int64)
        m = np.vstack([parse_vec(vecs[i]) for i in all_ids]).astype(np.float64)
        m /= np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-30)
        qconn = psycopg.connect(autocommit=True)
        side_b(qconn.cursor(), sb.get('model'), sb['cpu_precision'])
        info.update(model=sb.get('model') or info['model'], model_name=sb.get('model_name'),
                    cpu_precision=sb['cpu_precision'], model_sha256=sb['model_sha256'],
                    vectors_from=os.path.abspath(a.vectors))
    else:
        ids, m = read_embeddings(conn)
    pos = {int(i): k for k, i in enumerate(ids)}
    log('%d embeddings read (%.0f s)' % (len(ids), time.time() - t0))
    t1 = time.time()
    qv = []
    with qconn.cursor() as cur:
        for q in queries:
            cur.execute("SELECT embed(%s)::text", (q['query'],))
            qv.append(parse_vec(cur.fetchone()[0]))
    qm = np.vstack(qv).astype(np.float64)
    qm /= np.maximum(np.linalg.norm(qm, axis=1, keepdims=True), 1e-30)
    t_embed = time.time() - t1
    if a.save_queries:
        np.save(a.save_queries, np.vstack(qv))   # float32, in resolve_targets' order
    log('%d queries embedded (%.0f s)' % (len(queries), t_embed))
    t2 = time.time()
    kw = []
    if a.keyword_from:
        # code.search's keyword lists do not depend on the model: those of an earlier
        # ranks file of the same database
        with gzip.open(a.keyword_from, 'rt') as f:
            kf = {r['qid']: r for r in json.load(f)['queries']}
        for q in queries:
            assert kf[q['qid']]['target'] == q['target']
            kw.append(kf[q['qid']]['kw'])
    else:
        with conn.cursor() as cur:
            for i, q in enumerate(queries):
                cur.execute("SELECT id FROM code.search(%s, %s, mode => 'keyword')", (q['query'], a.depth))
                kw.append([r[0] for r in cur.fetchall()])
                if (i + 1) % 1000 == 0:
                    log('  keyword: %d/%d (%.0f s)' % (i + 1, len(queries), time.time() - t2))
    t_kw = time.time() - t2
    t3 = time.time()
    out = []
    for s in range(0, len(queries), 128):
        sim = qm[s:s + 128] @ m.T
        for j, q in enumerate(queries[s:s + 128]):
            row = sim[j]
            st = row[pos[q['target']]]
            vrank = int((row > st).sum()) + 1
            top = np.argpartition(-row, a.depth)[:a.depth]
            top = top[np.lexsort((ids[top], -row[top]))]
            vec = [int(x) for x in ids[top]]
            k = kw[s + j]
            r = dict(qid=q['qid'], language=q['language'], target=q['target'], vrank_full=vrank,
                     vec=vec, kw=k,
                     vector=vrank if vrank <= 10 else 0, keyword=rank_of(q['target'], k))
            for rk, w in fusions:
                r['hybrid_%d_%g' % (rk, w)] = rank_of(q['target'], fuse(vec, k, rk, a.depth,
                                                                         keyword_weight=w))
            out.append(r)
    log('ranked (%.0f s)' % (time.time() - t3))
    res = dict(source='fastrank.py', info=info, depth=a.depth, fusions=fusions,
               seconds=dict(read=t1 - t0, embed_queries=t_embed, keyword=t_kw,
                            total=time.time() - t0),
               queries=out)
    with gzip.open(a.out, 'wt') as f:
        json.dump(res, f)
    log('%d queries -> %s' % (len(out), a.out))


def cmd_check(a):
    d = json.load(gzip.open(a.ranks, 'rt'))
    rk, w = d['fusions'][0]
    conn = psycopg.connect(autocommit=True)
    qtext = {q['qid']: q['query'] for q in read_queries(a.queries)}
    by = collections.defaultdict(list)
    for r in d['queries']:
        by[r['language']].append(r)
    rng = random.Random(a.seed)
    sample = [r for l in sorted(by) for r in rng.sample(by[l], min(a.per_language, len(by[l])))]
    same = collections.Counter()
    diffs = []
    t0 = time.time()
    with conn.cursor() as cur:
        for r in sample:
            for mode, mine in (('vector', r['vec'][:10]),
                               ('hybrid', fuse(r['vec'], r['kw'], rk, d['depth'], keyword_weight=w))):
                cur.execute("SELECT id FROM code.search(%s, 10, mode => %s, rrf_k => %s,"
                            " depth => %s, keyword_weight => %s)",
                            (qtext[r['qid']], mode, rk, d['depth'], w))
                got = [x[0] for x in cur.fetchall()]
                same[mode + ' top10'] += got == mine
                same[mode + ' rank'] += rank_of(r['target'], got) == rank_of(r['target'], mine)
                if got != mine:
                    diffs.append(dict(qid=r['qid'], mode=mode, code_search=got, fastrank=mine))
    res = dict(ranks=os.path.basename(a.ranks), queries=len(sample), rrf_k=rk, keyword_weight=w,
               same=dict(same), seconds=time.time() - t0, differences=diffs[:20])
    print(json.dumps(res, indent=1))
    if a.out:
        with open(a.out, 'w') as f:
            json.dump(res, f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    s = sub.add_parser('ranks')
    s.add_argument('--out', required=True)
    s.add_argument('--depth', type=int, default=100)
    s.add_argument('--vectors', help="subcorpus.py embed's folder covering the whole corpus: rank with its vectors")
    s.add_argument('--keyword-from', help='take the keyword lists from this ranks file of the same database')
    s.add_argument('--save-queries', help="the queries' embed() vectors (.npy, float32) for subcorpus.py")
    s.add_argument('--rrf-k', default='2', help='comma list; the first is the headline')
    s.add_argument('--keyword-weight', default='0.5', help='comma list; the first is the headline')
    s.add_argument('--queries', default=os.path.join(HERE, 'queries.tsv.gz'))
    s = sub.add_parser('check')
    s.add_argument('ranks')
    s.add_argument('--per-language', type=int, default=25)
    s.add_argument('--seed', type=int, default=1)
    s.add_argument('--out')
    s.add_argument('--queries', default=os.path.join(HERE, 'queries.tsv.gz'))
    a = ap.parse_args()
    dict(ranks=cmd_ranks, check=cmd_check)[a.cmd](a)


if __name__ == '__main__':
    main()
