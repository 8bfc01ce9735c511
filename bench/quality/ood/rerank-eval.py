#!/usr/bin/env python3
"""bench/quality/ood/rerank-eval.py — score a cross-encoder re-ranker (issue 14,
item 5) on every benchmark of an eval kit: code.search's hybrid list under a
bi-encoder, its first DEPTH candidates re-ordered by the cross-encoder.

  rerank-eval.py KIT.json.gz BI_ENCODER CROSS_ENCODER... [--depth 50]
                 [--only cosqa,hand] [--out rerank.json] [--latency]
  rerank-eval.py KIT --report-only --out rerank.json

BI_ENCODER is a model folder as eval-models.py takes it (the shipped
models/code-minilm-l6); its vector list (exact cosine, 256 tokens) and the
kit's keyword list are fused exactly as code.search fuses them
(eval-models.py's fuse at DEFAULT_FUSION, rrf_k 2, keyword_weight 0.5).
CROSS_ENCODER is a transformers sequence-classification folder with one
label (train-reranker.py writes one): score(query, text) is its logit for
"[CLS] query [SEP] text [SEP]" (token types 0 up to the first [SEP], then
1), the query cut to 64 word pieces, then the text to what 256 leaves
(MAX_LEN: codevec.max_tokens' default).  The first DEPTH candidates of the hybrid list are sorted by
that score (ties by hybrid order); the rest keep their hybrid order.

Per query it records the rank of the best-ranked target in vector, hybrid
and, per cross-encoder, 'rerank:NAME' (0 = not in the list's first 100).
The report gives MRR@10 per (benchmark, half, language), the macro over
languages, and rerank minus hybrid with the paired bootstrap of
eval-models.py (2,000 resamples stratified by language, seed 1).

--latency: also time scoring DEPTH candidates of one query at a time
(median over 200 queries of the first group; batch = the DEPTH pairs; CUDA
synchronised), on this machine's device (the H200 figure of issue 14's
target; the CPU figure is measured on codevec's own encoder, not here).
Needs torch and transformers.
"""

import argparse
import gzip
import importlib.util
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location('eval_models', os.path.join(HERE, 'eval-models.py'))
em = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(em)

MAX_LEN = 256
QUERY_LEN = 64


class CrossEncoder:
    """A one-label sequence-classification model scoring (query, text)."""

    def __init__(self, folder, model=None, tok=None):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        self.torch = torch
        self.dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
        self.tok = tok or AutoTokenizer.from_pretrained(folder)
        self.model = model if model is not None else \
            AutoModelForSequenceClassification.from_pretrained(folder).float().to(self.dev).eval()

    def encode(self, queries, texts):
        """[CLS] query [SEP] text [SEP], token types 0 then 1: the query cut
        to QUERY_LEN tokens, then the text to what MAX_LEN leaves."""
        torch = self.torch
        t = self.tok
        qi = t(list(queries), add_special_tokens=False, truncation=True, max_length=QUERY_LEN)['input_ids']
        ti = t(list(texts), add_special_tokens=False, truncation=True, max_length=MAX_LEN)['input_ids']
        seqs = []
        for q, x in zip(qi, ti):
            x = x[:MAX_LEN - 3 - len(q)]
            seqs.append(([t.cls_token_id] + q + [t.sep_token_id], x + [t.sep_token_id]))
        n = max(len(a) + len(b) for a, b in seqs)
        ids = torch.zeros((len(seqs), n), dtype=torch.long)
        typ = torch.zeros((len(seqs), n), dtype=torch.long)
        att = torch.zeros((len(seqs), n), dtype=torch.long)
        for i, (a, b) in enumerate(seqs):
            ids[i, :len(a) + len(b)] = torch.tensor(a + b)
            typ[i, len(a):len(a) + len(b)] = 1
            att[i, :len(a) + len(b)] = 1
        return dict(input_ids=ids.to(self.dev), token_type_ids=typ.to(self.dev),
                    attention_mask=att.to(self.dev))

    def __call__(self, queries, texts, batch=256):
        """Scores of the pairs (queries[i], texts[i]): a float32 numpy array."""
        torch = self.torch
        out = np.zeros(len(texts), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.no_grad(), torch.autocast(device_type=self.dev.type, dtype=torch.bfloat16,
                                             enabled=self.dev.type == 'cuda'):
            for i in range(0, len(order), batch):
                ix = order[i:i + batch]
                b = self.encode([queries[j] for j in ix], [texts[j] for j in ix])
                out[ix] = self.model(**b).logits[:, 0].float().cpu().numpy()
        return out


def candidates(g, bi, cache=None, split=None, depth=em.DEPTH):
    """The group's queries (of SPLIT, or all) with their vector and hybrid
    lists under the bi-encoder: [(query dict, vector list, hybrid list)]."""
    cache = {} if cache is None else cache
    ids = np.array([s[0] for s in g['snippets']])
    if g['name'] not in cache:
        cache[g['name']] = bi([s[1] for s in g['snippets']])
    qs = [q for q in g['queries'] if split is None or q['split'] == split]
    if not qs:
        return []
    top, _ = em.vector_lists(cache[g['name']], bi([q['query'] for q in qs]), depth)
    out = []
    for qi, q in enumerate(qs):
        vlist = [int(ids[j]) for j in top[qi]]
        out.append((q, vlist, em.fuse(vlist, q['kw'], *em.DEFAULT_FUSION)[:depth]))
    return out


def rerank(cands, text_of, ce, depth):
    """Each hybrid list with its first DEPTH re-ordered by the cross-encoder."""
    qs, ts, spans = [], [], []
    for q, _, hl in cands:
        head = hl[:depth]
        spans.append((len(ts), len(head)))
        qs += [q['query']] * len(head)
        ts += [text_of[x] for x in head]
    s = ce(qs, ts) if ts else np.zeros(0)
    out = []
    for (q, _, hl), (a, n) in zip(cands, spans):
        order = sorted(range(n), key=lambda i: (-s[a + i], i))
        out.append([hl[i] for i in order] + hl[n:])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('kit')
    ap.add_argument('bi', nargs='?')
    ap.add_argument('cross', nargs='*')
    ap.add_argument('--depth', type=int, default=50)
    ap.add_argument('--only', help='comma list of group names or benchmarks')
    ap.add_argument('--out', default='rerank.json')
    ap.add_argument('--latency', action='store_true')
    ap.add_argument('--report-only', action='store_true')
    args = ap.parse_args()
    if not args.report_only:
        kit = json.load(gzip.open(args.kit, 'rt', encoding='utf-8'))
        groups = [g for g in kit['groups'] if g['benchmark'] != 'verify']
        if args.only:
            want = args.only.split(',')
            groups = [g for g in groups if g['name'] in want or g['benchmark'] in want]
        bi = em.TorchEncoder(args.bi)
        ces = {os.path.basename(c.rstrip('/')): CrossEncoder(c) for c in args.cross}
        res = dict(kit=args.kit, bi=args.bi, depth=args.depth, fusion=list(em.DEFAULT_FUSION),
                   groups=[], latency={})
        for g in groups:
            t0 = time.time()
            text_of = {s[0]: s[1] for s in g['snippets']}
            cands = candidates(g, bi)
            rows = [dict(qid=q['qid'], language=q['language'], split=q['split'],
                         vector=em.best_rank(vl, set(q['targets'])),
                         hybrid=em.best_rank(hl, set(q['targets']))) for q, vl, hl in cands]
            for name, ce in ces.items():
                for r, (q, _, _), rl in zip(rows, cands, rerank(cands, text_of, ce, args.depth)):
                    r['rerank:' + name] = em.best_rank(rl, set(q['targets']))
            res['groups'].append(dict(benchmark=g['benchmark'], name=g['name'], queries=rows))
            em.log('  %s: %d queries in %.1f s' % (g['name'], len(rows), time.time() - t0))
            if args.latency and not res['latency']:
                for name, ce in ces.items():
                    ms = []
                    for q, _, hl in cands[:200]:
                        head = hl[:args.depth]
                        if ce.dev.type == 'cuda':
                            ce.torch.cuda.synchronize()
                        t = time.perf_counter()
                        ce([q['query']] * len(head), [text_of[x] for x in head])
                        if ce.dev.type == 'cuda':
                            ce.torch.cuda.synchronize()
                        ms.append(1e3 * (time.perf_counter() - t))
                    res['latency'][name] = dict(device=str(ce.dev), depth=args.depth, queries=len(ms),
                                                p50_ms=round(statistics.median(ms), 3),
                                                p90_ms=round(sorted(ms)[int(0.9 * len(ms))], 3))
                    em.log('  latency %s: %s' % (name, res['latency'][name]))
        with open(args.out, 'w') as f:
            json.dump(res, f)
    print(report(json.load(open(args.out))))


def report(res):
    lines = ['hybrid = code.search (rrf_k %g, keyword_weight %g) under %s; rerank = its first %d '
             're-ordered by the cross-encoder\n' % (res['fusion'][0], res['fusion'][1],
                                                   os.path.basename(res['bi'].rstrip('/')),
                                                   res['depth'])]
    modes = ['vector', 'hybrid'] + sorted({k for g in res['groups'] for r in g['queries'][:1]
                                           for k in r if k.startswith('rerank:')})
    for b in sorted({g['benchmark'] for g in res['groups']}):
        for split in ('dev', 'test'):
            qs = [r for g in res['groups'] if g['benchmark'] == b for r in g['queries']
                  if r['split'] == split]
            if not qs:
                continue
            langs = sorted({r['language'] for r in qs})
            lines.append('### %s, %s half (MRR@10)\n' % (b, split))
            lines.append('| mode | %s | macro | - hybrid (95%% CI) | R@1 | R@10 | n |' % ' | '.join(langs))
            lines.append('|---|%s---:|---|---:|---:|---:|' % ('---:|' * len(langs)))
            hy = {l: [em.rr(r['hybrid']) for r in qs if r['language'] == l] for l in langs}
            for m in modes:
                by = {l: [em.rr(r[m]) for r in qs if r['language'] == l] for l in langs}
                macro = float(np.mean([np.mean(v) for v in by.values()]))
                ci = '—'
                if m != 'hybrid':
                    p, lo, hi = em.macro_diff_ci(by, hy)
                    ci = '%+.3f (%+.3f..%+.3f)' % (p, lo, hi)
                mt = em.metrics([r[m] for r in qs])
                lines.append('| %s | %s | **%.3f** | %s | %.3f | %.3f | %d |' % (
                    m, ' | '.join('%.3f' % np.mean(by[l]) for l in langs), macro, ci,
                    mt['r1'], mt['r10'], mt['n']))
            lines.append('')
    for name, lat in sorted(res.get('latency', {}).items()):
        lines.append('latency %s: %s' % (name, lat))
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
