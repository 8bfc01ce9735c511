#!/usr/bin/env python3
"""bench/quality/ood/pair-diff.py — two scorings of the same kit's queries
side by side: the same model through two encoders (torch fp32 on a GPU
against the server's int8 CPU encoder, eval-models.py --backend codevec),
or two models.

  pair-diff.py A.json:MODEL_A B.json:MODEL_B [--label-a A] [--label-b B]
               [--modes vector,2/0.5] [--benchmarks hand,cosqa,staqc]

A.json and B.json are eval-models.py results (or --merge outputs); MODEL
is the key of the model inside (the folder or name it was scored as).
Prints a Markdown table per mode: for every benchmark and half, macro
MRR@10 (mean over languages) of A and of B, B - A with the paired
bootstrap 95% CI stratified by language (eval-models.py's
macro_diff_ci), and how many queries have the same rank on both sides.
Both files must hold the same queries (same kit); exit 1 otherwise.
"""

import argparse
import importlib.util
import json
import lzma
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location('eval_models', os.path.join(HERE, 'eval-models.py'))
em = importlib.util.module_from_spec(spec)
spec.loader.exec_module(em)


def load(arg):
    path, model = arg.rsplit(':', 1)
    op = lzma.open if path.endswith('.xz') else open
    with op(path, 'rt') as f:
        res = json.load(f)
    if model not in res['models']:
        sys.exit('%s: no model %s (has %s)' % (path, model, ', '.join(res['models'])))
    return res, res['models'][model]


def cells(groups, benches, mode):
    """{(benchmark, split): {language: {qid: rank}}}"""
    out = {}
    for g in groups:
        if g['benchmark'] not in benches:
            continue
        for r in g['queries']:
            out.setdefault((g['benchmark'], r['split']), {}).setdefault(r['language'], {})[r['qid']] = \
                em.mode_ranks(r, mode)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('a')
    ap.add_argument('b')
    ap.add_argument('--label-a', default='A')
    ap.add_argument('--label-b', default='B')
    ap.add_argument('--modes', default='vector,%g/%g' % em.DEFAULT_FUSION)
    ap.add_argument('--benchmarks', default='hand,cosqa,staqc')
    args = ap.parse_args()
    ra, ga = load(args.a)
    rb, gb = load(args.b)
    if ra.get('kit_created') != rb.get('kit_created'):
        sys.exit('not the same kit: %s / %s' % (ra.get('kit_created'), rb.get('kit_created')))
    benches = args.benchmarks.split(',')
    for mode in args.modes.split(','):
        ca, cb = cells(ga, benches, mode), cells(gb, benches, mode)
        if set(ca) != set(cb):
            sys.exit('not the same benchmarks: %s / %s' % (sorted(ca), sorted(cb)))
        print('### %s (MRR@10, macro over languages; %s - %s with paired-bootstrap 95%% CI)\n' % (
            'vector' if mode == 'vector' else 'hybrid (rrf_k %s, keyword_weight %s)' % tuple(mode.split('/')),
            args.label_b, args.label_a))
        print('| benchmark | half | queries | %s | %s | difference (95%% CI) | same rank |' % (
            args.label_a, args.label_b))
        print('|---|---|---:|---:|---:|---|---:|')
        for key in sorted(ca, key=lambda k: (k[0], k[1] != 'dev')):
            la, lb = ca[key], cb[key]
            if {l: sorted(v) for l, v in la.items()} != {l: sorted(v) for l, v in lb.items()}:
                sys.exit('%s %s: not the same queries' % key)
            ya = {l: [em.rr(v[q]) for q in sorted(v)] for l, v in la.items()}
            yb = {l: [em.rr(lb[l][q]) for q in sorted(v)] for l, v in la.items()}
            p, lo, hi = em.macro_diff_ci(yb, ya)
            n = sum(len(v) for v in la.values())
            same = sum(1 for l, v in la.items() for q in v if v[q] == lb[l][q])
            print('| %s | %s | %d | %.3f | %.3f | %+.3f (%+.3f..%+.3f) | %d / %d |' % (
                key[0], key[1], n, np.mean([np.mean(v) for v in ya.values()]),
                np.mean([np.mean(v) for v in yb.values()]), p, lo, hi, same, n))
        print()


if __name__ == '__main__':
    main()
