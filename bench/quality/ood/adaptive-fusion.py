#!/usr/bin/env python3
"""bench/quality/ood/adaptive-fusion.py — does fusion that adapts to the
query beat code.search's fixed defaults? (issue 14, item 5; issue 27's
"hybrid >= vector"). Tuned on the dev halves, reported on the test halves.

  adaptive-fusion.py RESULTS.json KIT.json.gz [--model NAME] [--current K/W]

RESULTS.json is eval-models.py's output (every query's rank of its answer
in vector mode and at every (rrf_k, keyword_weight) point of the hybrid
grid); KIT.json.gz the kit it was scored on (build-kit.sh), read for the
queries' text. A query-adaptive fusion here is a rule that gives each
class of query its own grid point, so its ranks are read off the grid
without running anything again. Classes, from the query text alone (what
code.search could compute before it searches):

  identifier  the query has an identifier's shape: camelCase, snake_case,
              a dotted name, "()" or "::"
  short       otherwise, at most 4 words
  prose       otherwise

and from how selective its words are in the benchmark's corpus (the kit's
snippets): the largest or the mean inverse document frequency,
log(N / (1 + df)), of its words (split at non-letters and camelCase,
lower-cased, common English words left out; an approximation of
code.bm25's lexemes), in tertiles of the dev queries (low / mid / high).

Four rules are measured: identifier / other; identifier / short / prose;
tertiles of the largest IDF; tertiles of the mean IDF. For each class, the
grid point with the best mean MRR@10 over that class's dev queries (each
benchmark weighing the same) is chosen among the points where no
benchmark's dev queries of the class score below vector mode (choose.py's
condition, per class); ties within 0.001 keep the current defaults. The
test halves then compare the rule with the fixed defaults per benchmark
(macro over languages, paired bootstrap 95% CI, choose.py's diff_ci) and
against vector mode. Adopt only what the test
halves confirm: a gain with a CI above 0 on the benchmark it targets and
no benchmark whose CI lies below 0.
"""

import argparse
import gzip
import json
import math
import os
import re
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from choose import CURRENT, diff_ci, macro, rr  # noqa: E402

IDENTIFIER = re.compile(r'[a-z][A-Z]|_|\w\.\w|\(\)|::')
STOP = frozenset('the a an of to in for and or is are be by with on from as at it this that how what '
                 'which do does python java go get'.split())


def words(text):
    text = re.sub(r'([a-z])([A-Z])', r'\1 \2', text)
    return [w for w in re.findall(r'[a-z0-9]+', text.lower()) if len(w) > 1 and w not in STOP]


def idf_features(kit):
    """{(benchmark, qid): (largest IDF, mean IDF) of the query's words}."""
    out = {}
    for g in kit['groups']:
        df = {}
        for snippet in g['snippets']:
            for w in set(words(snippet[1])):
                df[w] = df.get(w, 0) + 1
        n = len(g['snippets'])
        for q in g['queries']:
            idf = [math.log(n / (1 + df.get(w, 0))) for w in words(q['query'])] or [0.0]
            out[(g['benchmark'], q['qid'])] = (max(idf), float(np.mean(idf)))
    return out


def rules(text, idf, dev_keys):
    """[(rule name, {(benchmark, qid): class})], the classes named in the docstring."""
    def shape(key, split_length):
        if IDENTIFIER.search(text[key]):
            return 'identifier'
        if split_length:
            return 'short' if len(text[key].split()) <= 4 else 'prose'
        return 'other'

    def tertile(key, i, cuts):
        return ('low', 'mid', 'high')[int(np.searchsorted(cuts, idf[key][i]))]
    out = [('identifier / other', {k: shape(k, False) for k in text}),
           ('identifier / short / prose', {k: shape(k, True) for k in text})]
    for i, what in enumerate(('largest', 'mean')):
        cuts = np.quantile([idf[k][i] for k in dev_keys], [1 / 3, 2 / 3])
        out.append(('tertiles of the %s IDF of the words (dev cuts %.2f, %.2f)' % ((what,) + tuple(cuts)),
                    {k: tertile(k, i, cuts) for k in idf}))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('results')
    ap.add_argument('kit')
    ap.add_argument('--model', help='a model of RESULTS.json (substring of its path); default: the only '
                    'non-baseline model')
    ap.add_argument('--current', default=CURRENT)
    args = ap.parse_args()
    res = json.load(open(args.results))
    kit = json.load(gzip.open(args.kit, 'rt'))
    text = {(g['benchmark'], q['qid']): q['query'] for g in kit['groups'] for q in g['queries']}
    models = [m for m in res['models'] if m != res['baseline']]
    if args.model:
        models = [m for m in models if args.model in m]
    if len(models) != 1:
        sys.exit('adaptive-fusion.py: name one model with --model (candidates: %s)' % ', '.join(models))
    model = models[0]
    queries = [(g['benchmark'], r) for g in res['models'][model] for r in sorted(g['queries'], key=lambda r: r['qid'])]
    grid = sorted(queries[0][1]['hybrid'])
    benches = sorted({b for b, _ in queries})
    print('# Query-adaptive fusion, %s (%s)\n' % (os.path.basename(model.rstrip('/')), args.results))

    idf = idf_features(kit)
    dev_keys = [(b, r['qid']) for b, r in queries if r['split'] == 'dev']
    for title, cls in rules(text, idf, dev_keys):
        names = sorted({cls[(b, r['qid'])] for b, r in queries})
        print('## By %s\n' % title)
        print('| class | ' + ' | '.join('%s dev / test' % b for b in benches) + ' | point chosen on dev |')
        print('|---|' + '---:|' * len(benches) + '---|')
        pick = {}
        for c in names:
            mine = {b: [r for b2, r in queries if b2 == b and r['split'] == 'dev' and cls[(b, r['qid'])] == c]
                    for b in benches}
            mine = {b: rs for b, rs in mine.items() if rs}
            vec = {b: np.mean([rr(r['vector']) for r in rs]) for b, rs in mine.items()}

            def score(point):
                per = {b: np.mean([rr(r['hybrid'][point]) for r in rs]) for b, rs in mine.items()}
                return float(np.mean(list(per.values()))), all(per[b] >= vec[b] for b in mine)
            s = {p: score(p) for p in grid}
            ok = [p for p in grid if s[p][1]] or grid
            s = {p: v for p, (v, _) in s.items()}
            top = max(s[p] for p in ok)
            pick[c] = args.current if s[args.current] >= top - 0.001 else max(ok, key=s.get)
            counts = ['%d / %d' % tuple(sum(1 for b2, r in queries if b2 == b and r['split'] == sp
                                            and cls[(b, r['qid'])] == c) for sp in ('dev', 'test'))
                      for b in benches]
            print('| %s | %s | %s (dev %.3f; %s %.3f) |' % (c, ' | '.join(counts), pick[c], s[pick[c]],
                                                          args.current, s[args.current]))
        print()

        def cells(split, mode):
            out = {}
            for b, r in queries:
                if r['split'] != split:
                    continue
                m = mode(b, r)
                x = r[m] if m == 'vector' else r['hybrid'][m]
                out.setdefault((b, r['language']), []).append(rr(x))
            return out

        fixed = lambda b, r: args.current                      # noqa: E731
        adaptive = lambda b, r: pick[cls[(b, r['qid'])]]       # noqa: E731
        vector = lambda b, r: 'vector'                         # noqa: E731
        print('| benchmark | half | vector | hybrid %s | adaptive | adaptive - fixed (95%% CI) | adaptive - vector (95%% CI) |'
              % args.current)
        print('|---|---|---:|---:|---:|---|---|')
        halves = {split: [cells(split, mode) for mode in (vector, fixed, adaptive)] for split in ('dev', 'test')}
        for b in benches:
            for split in ('dev', 'test'):
                v, f, a = ({k: x for k, x in c.items() if k[0] == b} for c in halves[split])
                print('| %s | %s | %.3f | %.3f | %.3f | %+.3f (%+.3f..%+.3f) | %+.3f (%+.3f..%+.3f) |' % (
                    (b, split, macro(v), macro(f), macro(a)) + diff_ci(a, f) + diff_ci(a, v)))
        print()


if __name__ == '__main__':
    main()
