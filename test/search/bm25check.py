#!/usr/bin/env python3
"""test/search/bm25check.py -- compare code.bm25_search's pruned top-k with a
full BM25 scoring in Python (bm25ref.py) of every snippet.

    bm25check.py DOCS.csv PARAMS.csv QUERIES.csv GOT.csv [K...]

DOCS: id, tsv (text); PARAMS: k1, b, weights ({D,C,B,A}), avgdl, n;
QUERIES: qid, lexemes of the question (space separated, from to_tsvector);
GOT: k, qid, rank, id, score as code.bm25_search returned them.  Prints one
TAP-like line per check and a summary; exit status 1 on any mismatch.
"""
import csv
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bm25ref  # noqa: E402

csv.field_size_limit(1 << 30)


def main():
    docs_p, params_p, queries_p, got_p = sys.argv[1:5]
    docs = {int(r[0]): bm25ref.parse_tsvector(r[1]) for r in csv.reader(open(docs_p))}
    k1, b, weights, avgdl, n = next(csv.reader(open(params_p)))
    weights = [float(x) for x in weights.strip('{}').split(',')]
    corpus = bm25ref.Corpus(docs, weights, float(k1), float(b), float(avgdl))
    queries = {int(r[0]): r[1].split() for r in csv.reader(open(queries_p))}
    got = {}
    for k, qid, rank, i, score in csv.reader(open(got_p)):
        got.setdefault((int(k), int(qid)), []).append((int(rank), int(i), float(score)))
    fails = 0
    checked = 0
    worst = ''
    ks = sorted({k for k, _ in got})
    for qid, lex in sorted(queries.items()):
        full = corpus.top(lex, max(ks) if ks else 10)
        for k in ks:
            want = full[:k]
            have = [(i, s) for _, i, s in sorted(got.get((k, qid), []))]
            checked += 1
            if have != want:
                fails += 1
                if not worst:
                    j = next((j for j in range(max(len(have), len(want)))
                              if j >= len(have) or j >= len(want) or have[j] != want[j]), 0)
                    worst = 'k %d query %d (%s), from rank %d: got %s want %s' % (
                        k, qid, ' '.join(lex), j + 1, have[j:j + 4], want[j:j + 4])
    print('# %d snippets, n %s, avgdl %s; %d (query, k) pairs, k in %s' % (
        len(docs), n, avgdl, checked, ks))
    if int(n) != len(docs):
        print('# n %s but %d snippets have a tsv' % (n, len(docs)))
        fails += 1
    if worst:
        print('# first mismatch: ' + worst[:1500])
    print('%d checked, %d mismatches' % (checked, fails))
    sys.exit(1 if fails else 0)


if __name__ == '__main__':
    main()
