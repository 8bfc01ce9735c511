#!/usr/bin/env python3
"""bench/quality/eval.py — run the query set against a loaded corpus.

Subcommands (connection from libpq's PG* variables):

  search  every query through code.search(query, k, mode => m, rrf_k, depth)
          for each mode asked, the function users run; writes per-query
          ranks of the target (1-based, 0 = not in the top k) to JSON.
  lists   the plain-SQL equivalents, once per query: the vector list
          (ORDER BY emb <=> embed(query) LIMIT depth) and the keyword list
          (tsv @@ the OR of the query's lexemes ORDER BY ts_rank DESC, id
          LIMIT depth) with their ids, distances and scores.  Hybrid for any
          rrf_k and depth is then computed offline (fuse()) exactly as
          code.search computes it: score = sum of 1/(rrf_k + rank) over the
          lists a snippet is in, ties by id.  Used for the rrf_k / depth
          grid, and as the harness when code.search is missing.
  score   metrics (MRR@10, recall@1, recall@10, per language and overall)
          from a ranks file.

Targets are found by (repo, path, qualified_name, start_line); a query whose
target is not in the database is reported and left out.
"""

import argparse
import collections
import gzip
import itertools
import json
import os
import sys
import time

import psycopg

HERE = os.path.dirname(os.path.abspath(__file__))


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def read_queries(path):
    with gzip.open(path, 'rt', encoding='utf-8') as f:
        head = f.readline().rstrip('\n').split('\t')
        rows = [dict(zip(head, l.rstrip('\n').split('\t'))) for l in f if l.strip()]
    for r in rows:
        r['start_line'] = int(r['start_line'])
        r['qid'] = int(r['qid'])
    return rows


def resolve_targets(conn, queries):
    """Snippet id of every query's target; queries whose target is missing are dropped."""
    with conn.cursor() as cur:
        cur.execute("CREATE TEMP TABLE IF NOT EXISTS q_targets (qid int, repo text, path text,"
                    " qualified_name text, start_line int)")
        cur.execute("TRUNCATE q_targets")
        with cur.copy("COPY q_targets FROM STDIN") as cp:
            for q in queries:
                cp.write_row((q['qid'], q['repo'], q['path'], q['qualified_name'], q['start_line']))
        cur.execute("""SELECT t.qid, min(s.id), count(*) FROM q_targets t
                       JOIN code.repos r ON r.name = t.repo
                       JOIN code.files f ON f.repo_id = r.id AND f.path = t.path
                       JOIN code.snippets s ON s.file_id = f.id
                         AND s.qualified_name = t.qualified_name AND s.start_line = t.start_line
                       GROUP BY t.qid""")
        ids = {qid: sid for qid, sid, n in cur.fetchall()}
    missing = [q for q in queries if q['qid'] not in ids]
    if missing:
        log('%d queries have no target in the database (first: %s)' % (
            len(missing), missing[0]))
    out = []
    for q in queries:
        if q['qid'] in ids:
            q = dict(q, target=ids[q['qid']])
            out.append(q)
    return out


def corpus_info(conn):
    with conn.cursor() as cur:
        cur.execute("""SELECT f.language, count(*), count(s.emb) FROM code.snippets s
                       JOIN code.files f ON f.id = s.file_id GROUP BY 1 ORDER BY 1""")
        per = {l: dict(snippets=n, embedded=e) for l, n, e in cur.fetchall()}
        cur.execute("SELECT count(*), count(emb), count(doc) FROM code.snippets")
        n, e, d = cur.fetchone()
        cur.execute("SELECT max(version) FROM code.schema_version")
        sv = cur.fetchone()[0]
        cur.execute("SELECT name, dims, max_tokens FROM codevec_model_info()")
        model = cur.fetchone()
        cur.execute("SHOW codevec.max_tokens")
        mt = cur.fetchone()[0]
        cur.execute("SELECT avg(octet_length(embed_text)) FROM code.snippets")
        avgb = float(cur.fetchone()[0] or 0)
    return dict(snippets=n, embedded=e, with_doc=d, per_language=per, schema_version=sv,
                avg_embed_text_bytes=avgb,
                model=model[0], dims=model[1], max_tokens=int(mt))


def has_search(conn):
    with conn.cursor() as cur:
        cur.execute("SELECT to_regprocedure('code.search(text,integer,text,text,boolean,text,integer,integer,double precision)')"
                    " IS NOT NULL, to_regprocedure('code.keyword_query(text)') IS NOT NULL")
        return cur.fetchone()


def cmd_search(args):
    conn = psycopg.connect(autocommit=True)
    if not has_search(conn)[0]:
        sys.exit('code.search is not in this database: load with a codevec-load that creates it')
    queries = resolve_targets(conn, read_queries(args.queries))
    if args.limit:
        queries = queries[:args.limit]
    info = corpus_info(conn)
    runs = []
    weights = [float(x) for x in args.keyword_weight.split(',')]
    for mode, rrf_k, depth, kw_w in itertools.product(
            args.modes.split(','), [int(x) for x in args.rrf_k.split(',')],
            [int(x) for x in args.depth.split(',')], weights):
        if mode != 'hybrid' and (rrf_k != int(args.rrf_k.split(',')[0]) or
                                 depth != int(args.depth.split(',')[0]) or
                                 kw_w != weights[0]):
            continue
        ranks, times = {}, []
        t0 = time.time()
        with conn.cursor() as cur:
            for i, q in enumerate(queries):
                t = time.perf_counter()
                cur.execute("SELECT id FROM code.search(%s, %s, mode => %s, rrf_k => %s,"
                            " depth => %s, keyword_weight => %s)",
                            (q['query'], args.k, mode, rrf_k, depth, kw_w))
                got = [r[0] for r in cur.fetchall()]
                times.append(time.perf_counter() - t)
                ranks[q['qid']] = got.index(q['target']) + 1 if q['target'] in got else 0
                if (i + 1) % 500 == 0:
                    log('  %s rrf_k=%d depth=%d: %d/%d queries, %.0f s' % (
                        mode, rrf_k, depth, i + 1, len(queries), time.time() - t0))
        times.sort()
        run = dict(mode=mode, rrf_k=rrf_k, depth=depth, keyword_weight=kw_w,
                   k=args.k, ranks=ranks,
                   seconds=time.time() - t0,
                   latency_ms=dict(p50=1000 * times[len(times) // 2],
                                   p95=1000 * times[int(len(times) * .95)]))
        m = metrics(queries, ranks)
        log('%-8s rrf_k=%-3d depth=%-4d kw=%-4g MRR@10 %.3f R@1 %.3f R@10 %.3f  (%.0f s)' % (
            mode, rrf_k, depth, kw_w, m['all']['mrr10'], m['all']['r1'], m['all']['r10'],
            run['seconds']))
        run['metrics'] = m
        runs.append(run)
    if args.merge and os.path.exists(args.out):
        # keep the runs of the file that this invocation did not repeat
        done = {(r['mode'], r['rrf_k'], r['depth'], r.get('keyword_weight', 1.0)) for r in runs}
        old = json.load(open(args.out))
        runs = [r for r in old['runs'] if (r['mode'], r['rrf_k'], r['depth'],
                                           r.get('keyword_weight', 1.0)) not in done] + runs
    out = dict(source='code.search', corpus=info, embed=args.embed, queries=len(queries),
               query_languages=dict(collections.Counter(q['language'] for q in queries)),
               runs=runs)
    with open(args.out, 'w') as f:
        json.dump(out, f)


def keyword_sql(conn, cfg):
    """The keyword query: code.keyword_query() when the loader made it, else the same in SQL."""
    if has_search(conn)[1]:
        return "code.keyword_query(%(q)s)"
    return ("(SELECT string_agg(quote_literal(l), ' | ')::tsquery FROM "
            "unnest(tsvector_to_array(to_tsvector('%s', %%(q)s))) l)" % cfg)


def cmd_lists(args):
    conn = psycopg.connect(autocommit=True)
    queries = resolve_targets(conn, read_queries(args.queries))
    if args.limit:
        queries = queries[:args.limit]
    info = corpus_info(conn)
    with conn.cursor() as cur:
        cur.execute("SELECT to_regclass('code.snippets') IS NOT NULL,"
                    " (SELECT count(*) FROM pg_ts_config WHERE cfgname = 'codevec_code') > 0")
        cfg = 'codevec_code' if cur.fetchone()[1] else 'simple'
    kw = keyword_sql(conn, cfg)
    out = []
    t0 = time.time()
    tv = tk = 0.0
    with conn.cursor() as cur:
        for i, q in enumerate(queries):
            t = time.perf_counter()
            cur.execute("SELECT embed(%s)::text", (q['query'],))
            qv = cur.fetchone()[0]
            cur.execute("SELECT id, emb <=> %(v)s::codevec AS d FROM code.snippets"
                        " WHERE emb IS NOT NULL ORDER BY emb <=> %(v)s::codevec LIMIT %(n)s",
                        dict(v=qv, n=args.depth))
            vec = cur.fetchall()
            t2 = time.perf_counter()
            cur.execute("SELECT s.id, ts_rank(s.tsv, x.tq) AS ks FROM code.snippets s, (SELECT "
                        + kw + " AS tq) x WHERE s.tsv @@ x.tq ORDER BY ks DESC, s.id LIMIT %(n)s",
                        dict(q=q['query'], n=args.depth))
            key = cur.fetchall()
            t3 = time.perf_counter()
            tv += t2 - t
            tk += t3 - t2
            out.append(dict(qid=q['qid'], language=q['language'], target=q['target'],
                            vec=[[a, round(b, 6)] for a, b in vec],
                            kw=[[a, round(b, 6)] for a, b in key]))
            if (i + 1) % 200 == 0:
                log('  lists: %d/%d queries, %.0f s' % (i + 1, len(queries), time.time() - t0))
    res = dict(source='sql', keyword_config=cfg, keyword_query=kw, corpus=info,
               depth=args.depth, seconds=time.time() - t0,
               vector_s_per_query=tv / max(1, len(queries)),
               keyword_s_per_query=tk / max(1, len(queries)), lists=out)
    with gzip.open(args.out, 'wt') as f:
        json.dump(res, f)
    log('lists of %d queries -> %s (%.0f s)' % (len(out), args.out, time.time() - t0))


# keyword query semantics compared by `eval.py kwlists` (plain SQL over the
# same tsv column); %(tq)s is the query's tsquery, %(cfg)s the configuration
KW_VARIANTS = {
    'or_rank': ('{or}', 'ts_rank(s.tsv, x.tq)'),
    'or_rank_cd': ('{or}', 'ts_rank_cd(s.tsv, x.tq)'),
    'or_rank_len': ('{or}', 'ts_rank(s.tsv, x.tq, 1)'),
    'or_rank_flat_weights': ('{or}', "ts_rank('{1,1,1,1}', s.tsv, x.tq)"),
    'or_rank_body_0.02': ('{or}', "ts_rank('{0.02,0.2,0.4,1}', s.tsv, x.tq)"),
    'or_rank_body_0.05': ('{or}', "ts_rank('{0.05,0.2,0.4,1}', s.tsv, x.tq)"),
    'and_rank': ("plainto_tsquery('{cfg}', %(q)s)", 'ts_rank(s.tsv, x.tq)'),
}


def cmd_kwlists(args):
    conn = psycopg.connect(autocommit=True)
    queries = resolve_targets(conn, read_queries(args.queries))
    if args.limit:
        queries = queries[:args.limit]
    with conn.cursor() as cur:
        cur.execute("SELECT (SELECT count(*) FROM pg_ts_config WHERE cfgname = 'codevec_code') > 0")
        cfg = 'codevec_code' if cur.fetchone()[0] else 'simple'
    orq = keyword_sql(conn, cfg)
    for name in args.variants.split(','):
        tq, rank = KW_VARIANTS[name]
        tq = tq.replace('{or}', orq).replace('{cfg}', cfg)
        out = []
        t0 = time.time()
        with conn.cursor() as cur:
            for q in queries:
                cur.execute("SELECT s.id, " + rank + " AS ks FROM code.snippets s, (SELECT " + tq +
                            " AS tq) x WHERE s.tsv @@ x.tq ORDER BY ks DESC, s.id LIMIT %(n)s",
                            dict(q=q['query'], n=args.depth))
                out.append(dict(qid=q['qid'], language=q['language'], target=q['target'],
                                kw=[[a, round(b, 6)] for a, b in cur.fetchall()]))
        res = dict(name=name, describe='%s; %s' % (tq.replace('%(q)s', 'q'), rank), depth=args.depth,
                   seconds=time.time() - t0, lists=out)
        with gzip.open(os.path.join(args.outdir, 'kw-%s.lists.json.gz' % name), 'wt') as f:
            json.dump(res, f)
        log('kw %s: %d queries, %.0f s' % (name, len(out), time.time() - t0))


def fuse(vec_ids, kw_ids, rrf_k, depth, k=10, keyword_weight=1.0):
    """code.search's hybrid: RRF of the top depth of both lists (the keyword
    list's terms times keyword_weight), ties by id."""
    score = collections.defaultdict(float)
    for r, i in enumerate(vec_ids[:depth], 1):
        score[i] += 1.0 / (rrf_k + r)
    for r, i in enumerate(kw_ids[:depth], 1):
        score[i] += keyword_weight / (rrf_k + r)
    return [i for i, _ in sorted(score.items(), key=lambda x: (-x[1], x[0]))[:k]]


def rank_of(target, ids, k=10):
    ids = ids[:k]
    return ids.index(target) + 1 if target in ids else 0


def metrics(queries, ranks):
    """MRR@10, recall@1, recall@10 per language, overall (micro) and the mean of languages."""
    by = collections.defaultdict(list)
    for q in queries:
        r = ranks.get(q['qid'], ranks.get(str(q['qid'])))
        if r is None:
            continue
        by[q['language']].append(r)
        by['all'].append(r)
    out = {}
    for lang, rs in sorted(by.items()):
        n = len(rs)
        out[lang] = dict(n=n, mrr10=sum(1.0 / r for r in rs if 0 < r <= 10) / n,
                         r1=sum(1 for r in rs if r == 1) / n,
                         r10=sum(1 for r in rs if 0 < r <= 10) / n)
    langs = [l for l in out if l != 'all']
    out['mean_of_languages'] = {m: sum(out[l][m] for l in langs) / len(langs)
                                for m in ('mrr10', 'r1', 'r10')}
    return out


def cmd_score(args):
    d = json.load(open(args.ranks))
    qs = read_queries(args.queries)
    for run in d['runs']:
        m = metrics(qs, run['ranks'])
        print(run['mode'], run.get('rrf_k'), run.get('depth'),
              ' '.join('%s %.3f/%.3f/%.3f' % (l, v['mrr10'], v['r1'], v['r10'])
                       for l, v in m.items() if 'n' in v))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = ap.add_subparsers(dest='cmd', required=True)
    s = sub.add_parser('search')
    s.add_argument('--modes', default='vector,keyword,hybrid')
    s.add_argument('--rrf-k', default='60')
    s.add_argument('--depth', default='100')
    s.add_argument('--keyword-weight', default='1',
                   help="code.search's keyword_weight (hybrid), comma-separated")
    s.add_argument('--k', type=int, default=10)
    s.add_argument('--merge', action='store_true',
                   help='keep the runs already in --out that this one does not repeat')
    s.add_argument('--embed', default='', help='how embed_text was made (recorded)')
    s.add_argument('--limit', type=int, default=0)
    s.add_argument('--queries', default=os.path.join(HERE, 'queries.tsv.gz'))
    s.add_argument('--out', required=True)
    s = sub.add_parser('lists')
    s.add_argument('--depth', type=int, default=400)
    s.add_argument('--limit', type=int, default=0)
    s.add_argument('--queries', default=os.path.join(HERE, 'queries.tsv.gz'))
    s.add_argument('--out', required=True)
    s = sub.add_parser('kwlists')
    s.add_argument('--variants', default=','.join(KW_VARIANTS))
    s.add_argument('--depth', type=int, default=100)
    s.add_argument('--limit', type=int, default=0)
    s.add_argument('--queries', default=os.path.join(HERE, 'queries.tsv.gz'))
    s.add_argument('--outdir', required=True)
    s = sub.add_parser('score')
    s.add_argument('ranks')
    s.add_argument('--queries', default=os.path.join(HERE, 'queries.tsv.gz'))
    args = ap.parse_args()
    dict(search=cmd_search, lists=cmd_lists, kwlists=cmd_kwlists, score=cmd_score)[args.cmd](args)


if __name__ == '__main__':
    main()
