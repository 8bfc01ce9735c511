#!/usr/bin/env python3
"""bench/quality/ood/bm25-fields.py — BM25's field weights measured where
the code keeps its documentation: the out-of-distribution sets.

    bm25-fields.py [--points 'D,C,B,A;...'] [--json OUT.json] > report.md

code.bm25_params' weights {D body, C doc, B signature, A name} =
{0.2, 0.3, 0.3, 1.0} were chosen by ../bm25_tune.py on bench/quality's
set, whose snippets are loaded with --strip-docs: the doc field is empty
there, so its weight was never measured (and no change of it moves that
set's keyword list). The OOD sets' databases keep the documentation as
shipped (build-kit.sh: cosqa, staqc, hand_<repo>; loaded with embeddings,
so that the vector lists come from code.search itself).

For each point of the grid, in every database: UPDATE code.bm25_params
SET weights, code.bm25_refresh(), then every question's keyword list
(code.search(q, k => 100, mode => 'keyword')); the vector lists
(mode => 'vector', depth 100) once. Hybrid is those two lists fused as
code.search fuses them (weighted RRF at its defaults rrf_k 2,
keyword_weight 0.5, ties by id), checked against code.search's own hybrid
top 10 at the current weights for the first 20 questions of each
database. MRR@10 of the best-ranked answer per (benchmark, language) cell
and half (make-kit.py's questions, targets and halves). choose.py's
fusion rule picks a point on the dev cells (the best hybrid macro where
hybrid is not below vector on any benchmark; the current weights stay
unless the pick beats them with a 95% CI above 0), and the test halves
are reported beside it. Every database gets its weights back at the end.

Connection: libpq's PG* variables (host, port, user) of the cluster that
holds those databases, each with codevec.device = cpu or a GPU service.
"""
import argparse
import json
import sys

import psycopg

from choose import diff_ci, fusion_rule, macro
from oodlists import KEYWORD_WEIGHT, RRF_K, cells, check_fusion, fuse, groups, lists, only, rr

CURRENT = '0.2,0.3,0.3,1'
# written before any was measured: the doc weight from a tenth of the
# name's to the name's, and two body weights beside the doc weight 0.5
POINTS = '0.2,0.1,0.3,1;0.2,0.3,0.3,1;0.2,0.5,0.3,1;0.2,0.75,0.3,1;0.2,1,0.3,1;0.1,0.5,0.3,1;0.3,0.5,0.3,1'


def set_weights(cur, point):
    cur.execute("UPDATE code.bm25_params SET weights = %s::real[]", ('{%s}' % point,))
    cur.execute("SELECT code.bm25_refresh()")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--points', default=POINTS)
    ap.add_argument('--json')
    a = ap.parse_args()
    points = a.points.split(';')
    if CURRENT not in points:
        sys.exit('the grid must hold the current weights %s' % CURRENT)
    rows = []
    for bench, db, group in groups():
        conn = psycopg.connect(dbname=db, autocommit=True)
        cur = conn.cursor()
        cur.execute("SELECT array_to_string(weights, ',') FROM code.bm25_params")
        stored = cur.fetchone()[0]
        qs = sorted(group(conn), key=lambda q: q['qid'])
        try:
            set_weights(cur, CURRENT)
            for n, q in enumerate(qs):
                vec = lists(cur, q['query'], 'vector')
                kw = lists(cur, q['query'], 'keyword')
                if n < 20:
                    check_fusion(cur, db, q, vec, kw)
                row = dict(benchmark=bench, qid=q['qid'], language=q['language'], split=q['split'],
                           vector=rr(vec, set(q['targets'])))
                row['_vec'] = vec
                rows.append(row)
            mine = rows[-len(qs):]
            for p in points:
                set_weights(cur, p)
                for q, row in zip(qs, mine):
                    kw = lists(cur, q['query'], 'keyword')
                    row['keyword ' + p] = rr(kw, set(q['targets']))
                    row['hybrid ' + p] = rr(fuse(row['_vec'], kw), set(q['targets']))
            print('%s: %d questions, %d points' % (db, len(qs), len(points)), file=sys.stderr)
        finally:
            set_weights(cur, stored)
            conn.close()
    for r in rows:
        del r['_vec']
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(dict(points=points, current=CURRENT, rrf_k=RRF_K, keyword_weight=KEYWORD_WEIGHT,
                           rows=rows), f)
    report(rows, points)


def report(rows, points):
    benches = sorted({r['benchmark'] for r in rows})
    for split in ('dev', 'test'):
        vec = cells(rows, split, 'vector')
        print('### %s halves: MRR@10 (macro over languages) at each weights point {body, doc, signature, name}\n'
              % split)
        print('| weights | ' + ' | '.join('%s keyword' % b for b in benches) + ' | '
              + ' | '.join('%s hybrid (- vector)' % b for b in benches) + ' | OOD hybrid macro |')
        print('|---|' + '---:|' * (2 * len(benches) + 1))
        print('| vector | ' + ' | '.join('—' for _ in benches) + ' | '
              + ' | '.join('%.3f' % macro(only(vec, b)) for b in benches) + ' | %.4f |' % macro(vec))
        for p in points:
            kw, hy = cells(rows, split, 'keyword ' + p), cells(rows, split, 'hybrid ' + p)
            print('| %s%s | ' % (p, ' (current)' if p == CURRENT else '')
                  + ' | '.join('%.3f' % macro(only(kw, b)) for b in benches) + ' | '
                  + ' | '.join('%.3f (%+.3f)' % (macro(only(hy, b)), macro(only(hy, b)) - macro(only(vec, b)))
                               for b in benches) + ' | %.4f |' % macro(hy))
        print()
    dev = {p: cells(rows, 'dev', 'hybrid ' + p) for p in points}
    rule = fusion_rule(dev, cells(rows, 'dev', 'vector'), benches, CURRENT, tie=points.index)
    best, pick = rule['best'][1], rule['pick'][1]
    print('### The rule on the dev halves\n')
    print('Eligible (hybrid not below vector on %s, CI): %s. Best: %s (dev OOD hybrid macro %.4f).'
          % (', '.join(benches), ', '.join(s[1] for s in rule['ok']), best, rule['best'][0]))
    if rule['gain']:
        print('Against the current weights: %+.4f (95%% CI %+.4f..%+.4f).' % rule['gain'])
    print('**Pick: %s**%s.\n' % (pick, ' (the current weights stay)' if pick == CURRENT else ''))
    print('### Test halves: the pick and the best against the current weights (95% CI)\n')
    print('| weights | ' + ' | '.join('%s hybrid' % b for b in benches) + ' | OOD macro | vs current |')
    print('|---|' + '---:|' * (len(benches) + 1) + '---|')
    cur = cells(rows, 'test', 'hybrid ' + CURRENT)
    for p in dict.fromkeys([CURRENT, pick, best]):
        c = cells(rows, 'test', 'hybrid ' + p)
        print('| %s | ' % p + ' | '.join('%.3f' % macro(only(c, b)) for b in benches)
              + ' | %.4f | %s |' % (macro(c), '—' if p == CURRENT else '%+.4f (%+.4f..%+.4f)' % diff_ci(c, cur)))


if __name__ == '__main__':
    main()
