#!/usr/bin/env python3
"""bench/quality/ood/eval-models.py — score model folders on every benchmark
of an eval kit (make-kit.py), in vector, keyword and hybrid mode, exactly as
code.search ranks, without PostgreSQL.

  eval-models.py KIT.json.gz FOLDER... [--out results.json] [--baseline NAME]
                 [--backend torch|numpy|codevec [--precision int8|fp32]]
                 [--verify] [--selfcheck N]
  eval-models.py KIT --merge A.json B.json --out ALL.json   (models or benchmarks of separate runs)
  eval-models.py KIT --report-only --out ALL.json

FOLDER is a model folder as codevec_models holds it (config.json,
model.safetensors, tokenizer files; F32 or F16 weights). For each folder:

- vector: embed() is mean pooling over the last hidden states of the
  non-padding tokens, L2-normalised (sentence-transformers' all-MiniLM-L6-v2
  recipe; src/encoder.c), texts cut to 256 tokens with [CLS] and [SEP]
  (codevec.max_tokens' default). Every snippet's embed_text and every query
  are embedded; ranking is exact cosine over the whole database (what
  code.search's vector mode returns with a flat index). The torch backend
  (transformers AutoModel, a GPU when there is one) is the one to use; the
  numpy backend is an independent BERT forward pass from the safetensors
  (slow; for checks on a CPU without torch).  The codevec backend embeds
  through a server's embed() (FOLDER is then the name of a model the
  server has installed, or a folder it can read; PG* variables): the int8 or fp32 CPU encoder
  users get, about 60 texts/s on two cores at int8.
- keyword: the kit's code.search(mode => 'keyword') list (BM25).
- hybrid: code.search's weighted reciprocal rank fusion of the top DEPTH
  (100) of both lists: score = 1/(rrf_k + vector rank) + keyword_weight /
  (rrf_k + keyword rank), a list's term 0 when the snippet is not in it,
  ties by id (loaders/schema.c, cvl_search_sql); computed for a grid of
  rrf_k x keyword_weight so choose.py can pick the fusion defaults.

A query's rank is that of its best-ranked target (0 = not found in the
list). Metrics: MRR@10, R@1, R@10 per (benchmark, split, language); the
report prints them with paired-bootstrap 95% CIs of the difference to the
baseline model (default: the folder whose name contains all-MiniLM-L6-v2,
else the first), 2,000 resamples stratified by language, seed 1.

public-4: when the public group is scored, its four-language set of
  2026-11-21 to 2026-12-03 (Go, JavaScript, Python, Rust: qids 1..2400
  over those languages' 36,302 snippets, byte-identical in the eight-language
  set; bench/quality/build-set.py) is scored beside it as benchmark
  public-4, from the same vectors: issue 27's in-distribution anchor (0.474,
  vector, all 2,400 queries) was measured on it.  public-repos.tsv maps the
  kit database's snippet ids to repos (each repo one contiguous range);
  public-4 is skipped, with a line on stderr, when the ranges do not cover
  the group or its four languages' counts differ from corpus-stats.json.
  Vector ranks are exact over the 36,302; keyword lists are the kit's
  eight-language BM25 lists cut to them (BM25's statistics of a
  four-language database differ), so keyword and hybrid there are close,
  not exact.
--verify: the kit's verify group carries code.search's own vector and
  hybrid top 10 under the installed model; print how many queries have the
  same top 10 (vector) and the same fused top 10 (hybrid at
  DEFAULT_FUSION, code.search's defaults: rrf_k 2, keyword_weight 0.5) here.
--selfcheck N: embed N kit texts with both backends and print the smallest
  cosine between them (torch against the numpy reference).
"""

import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np

DEPTH = 100
MAXTOK = 256
RRF_KS = [0, 1, 2, 5, 10, 20, 60]
WEIGHTS = [0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5]
DEFAULT_FUSION = (2, 0.5)   # code.search's defaults (loaders/schema.c)
HERE = os.path.dirname(os.path.abspath(__file__))
FIRST_FOUR = ('go', 'javascript', 'python', 'rust')


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- encoders

class TorchEncoder:
    """transformers AutoModel + AutoTokenizer: offline-eval.py's recipe."""

    def __init__(self, folder):
        import torch
        from transformers import AutoModel, AutoTokenizer
        self.torch = torch
        self.dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
        self.tok = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModel.from_pretrained(folder).float().to(self.dev).eval()

    def __call__(self, texts, batch=512):
        torch = self.torch
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        with torch.no_grad():
            for i in range(0, len(order), batch):
                idx = order[i:i + batch]
                b = self.tok([texts[j] for j in idx], padding=True, truncation=True,
                             max_length=MAXTOK, return_tensors='pt').to(self.dev)
                h = self.model(**b).last_hidden_state
                m = b['attention_mask'].unsqueeze(-1).to(h.dtype)
                e = torch.nn.functional.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1)
                out[idx] = e.float().cpu().numpy()
        return out


class CodevecEncoder:
    """embed(text[]) of a PostgreSQL server with the codevec extension: the
    encoder users get (src/encoder.c on the CPU at codevec.cpu_precision,
    or the GPU service), for scoring without torch.  NAME is a model the
    server has installed (codevec_models/NAME) or a folder the server can
    read (codevec.model is set to it per session); connection from libpq's
    PG* variables, in a database where CREATE EXTENSION codevec was run."""

    def __init__(self, name, precision=None):
        import psycopg
        # a local folder goes by its path (the server must be able to read
        # it), anything else by its name in codevec_models
        model = os.path.abspath(name) if os.path.isdir(name) else name
        try:
            self.conn = psycopg.connect(autocommit=True)
            cur = self.conn.cursor()
            cur.execute("SELECT set_config('codevec.model', %s, false)", (model,))
            if precision:
                cur.execute("SELECT set_config('codevec.cpu_precision', %s, false)", (precision,))
            cur.execute("SELECT name, current_setting('codevec.cpu_precision'), sha256, max_tokens"
                        " FROM codevec_model_info()")
            *self.info, maxtok = cur.fetchone()
        except psycopg.Error as e:
            raise SystemExit('codevec backend, model %s: %s %s' % (model, e.sqlstate or '', e))
        if maxtok != MAXTOK:
            raise SystemExit('codevec backend: codevec.max_tokens is %d, not %d' % (maxtok, MAXTOK))

    def __call__(self, texts, batch=256):
        out = None
        with self.conn.cursor() as cur:
            for i in range(0, len(texts), batch):
                cur.execute("SELECT e::real[] FROM unnest(embed(%s::text[])) WITH ORDINALITY AS u(e, n)"
                            " ORDER BY n", (texts[i:i + batch],))
                rows = np.array([r[0] for r in cur.fetchall()], dtype=np.float32)
                if out is None:
                    out = np.zeros((len(texts), len(rows[0])), dtype=np.float32)
                out[i:i + len(rows)] = rows
        return out


def _erf(x):
    # Abramowitz and Stegun 7.1.26 (|error| < 1.5e-7), vectorised
    s = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    y = 1.0 - (((((1.061405429 * t - 1.453152027) * t) + 1.421413741) * t - 0.284496736) * t
               + 0.254829592) * t * np.exp(-a * a)
    return s * y


class NumpyEncoder:
    """BERT forward pass (Devlin et al. 2019) in numpy from model.safetensors."""

    def __init__(self, folder):
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer
        cfg = json.load(open(os.path.join(folder, 'config.json')))
        self.heads = cfg['num_attention_heads']
        self.layers = cfg['num_hidden_layers']
        self.eps = cfg.get('layer_norm_eps', 1e-12)
        w = load_file(os.path.join(folder, 'model.safetensors'))
        self.w, self.wt = {}, {}
        for k, v in w.items():
            for p in ('embeddings.', 'encoder.'):
                if p in k:
                    k = k[k.index(p):]
            self.w[k] = v.astype(np.float32)
        self.tok = Tokenizer.from_file(os.path.join(folder, 'tokenizer.json'))
        self.tok.enable_truncation(MAXTOK)
        self.tok.no_padding()

    def _ln(self, x, p):
        mu = x.mean(-1, keepdims=True)
        var = ((x - mu) ** 2).mean(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + self.eps) * self.w[p + '.weight'] + self.w[p + '.bias']

    def _lin(self, x, p):
        if p not in self.wt:
            self.wt[p] = np.ascontiguousarray(self.w[p + '.weight'].T)
        y = x.reshape(-1, x.shape[-1]) @ self.wt[p] + self.w[p + '.bias']
        return y.reshape(x.shape[:-1] + (y.shape[-1],))

    def _forward(self, ids, mask):
        w = self.w
        n, L = ids.shape
        x = w['embeddings.word_embeddings.weight'][ids] + \
            w['embeddings.position_embeddings.weight'][:L][None] + \
            w['embeddings.token_type_embeddings.weight'][0][None, None]
        x = self._ln(x, 'embeddings.LayerNorm')
        H = self.heads
        d = x.shape[-1] // H
        bias = ((1.0 - mask) * -1e9)[:, None, None, :].astype(np.float32)
        for l in range(self.layers):
            p = 'encoder.layer.%d.' % l
            q = self._lin(x, p + 'attention.self.query').reshape(n, L, H, d).transpose(0, 2, 1, 3)
            k = self._lin(x, p + 'attention.self.key').reshape(n, L, H, d).transpose(0, 2, 3, 1)
            v = self._lin(x, p + 'attention.self.value').reshape(n, L, H, d).transpose(0, 2, 1, 3)
            a = q @ k / math.sqrt(d) + bias
            a = np.exp(a - a.max(-1, keepdims=True))
            a /= a.sum(-1, keepdims=True)
            c = (a @ v).transpose(0, 2, 1, 3).reshape(n, L, H * d)
            x = self._ln(self._lin(c, p + 'attention.output.dense') + x, p + 'attention.output.LayerNorm')
            h = self._lin(x, p + 'intermediate.dense')
            h = 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)))
            x = self._ln(self._lin(h, p + 'output.dense') + x, p + 'output.LayerNorm')
        m = mask[:, :, None]
        e = (x * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return e / np.maximum(np.linalg.norm(e, axis=-1, keepdims=True), 1e-12)

    def __call__(self, texts, batch=16):
        enc = [self.tok.encode(t).ids for t in texts]
        order = sorted(range(len(texts)), key=lambda i: len(enc[i]))
        out = None
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            L = max(len(enc[j]) for j in idx)
            ids = np.zeros((len(idx), L), dtype=np.int64)
            mask = np.zeros((len(idx), L), dtype=np.float32)
            for r, j in enumerate(idx):
                ids[r, :len(enc[j])] = enc[j]
                mask[r, :len(enc[j])] = 1
            e = self._forward(ids, mask)
            if out is None:
                out = np.zeros((len(texts), e.shape[1]), dtype=np.float32)
            out[idx] = e
        return out


def encoder(folder, backend, precision=None):
    if backend == 'codevec':
        return CodevecEncoder(folder, precision)
    if backend == 'numpy':
        return NumpyEncoder(folder)
    try:
        return TorchEncoder(folder)
    except ImportError:
        if backend == 'torch':
            raise
        log('torch/transformers missing: numpy backend')
        return NumpyEncoder(folder)


# ---------------------------------------------------------------- ranking

def vector_lists(D, Q, depth=DEPTH):
    """Top-depth snippet positions per query by cosine, and the full scores."""
    try:
        import torch
        if torch.cuda.is_available():
            d = torch.from_numpy(D).cuda()
            q = torch.from_numpy(Q).cuda()
            S = (q @ d.T)
            top = torch.topk(S, min(depth, D.shape[0]), dim=1).indices.cpu().numpy()
            return top, S.cpu().numpy()
    except ImportError:
        pass
    S = Q @ D.T
    k = min(depth, D.shape[0])
    part = np.argpartition(-S, k - 1, axis=1)[:, :k]
    top = np.take_along_axis(part, np.argsort(-np.take_along_axis(S, part, 1), axis=1, kind='stable'), 1)
    return top, S


def best_rank(ranked_ids, targets):
    for i, x in enumerate(ranked_ids, 1):
        if x in targets:
            return i
    return 0


def fuse(vlist, klist, rrf_k, w):
    """code.search's hybrid order over ids: score desc, id asc."""
    score = {}
    for r, x in enumerate(vlist, 1):
        score[x] = 1.0 / (rrf_k + r) if rrf_k + r else math.inf
    for r, x in enumerate(klist, 1):
        score[x] = score.get(x, 0.0) + (w / (rrf_k + r) if rrf_k + r else math.inf)
    return sorted(score, key=lambda x: (-score[x], x))


def first_four_group(g, repos_tsv=os.path.join(HERE, 'public-repos.tsv'),
                     stats_json=os.path.join(HERE, '..', 'corpus-stats.json')):
    """The public group's four-language subset (benchmark public-4), or None.

    Returns a group with the subset's snippets and queries, 'parent' (the
    public group's name) and 'keep' (positions of the subset's snippets in
    the parent's, so its vectors are reused); None, logged, when
    repos_tsv's ranges do not describe this kit's database."""
    ranges = []
    for line in open(repos_tsv, encoding='utf-8'):
        if line.startswith('#') or not line.strip():
            continue
        _repo, lang, first, last = line.rstrip('\n').split('\t')
        ranges.append((lang, int(first), int(last)))
    ids = [int(s[0]) for s in g['snippets']]
    lang_of = {}
    for lang, first, last in ranges:
        for i in range(first, last + 1):
            lang_of[i] = lang
    want = json.load(open(stats_json))['languages']
    keep = [p for p, i in enumerate(ids) if lang_of.get(i) in FIRST_FOUR]
    counts = {l: sum(1 for p in keep if lang_of[ids[p]] == l) for l in FIRST_FOUR}
    if len(lang_of) != len(ids) or set(lang_of) != set(ids) or \
            any(counts[l] != want[l]['snippets'] for l in FIRST_FOUR):
        log('public-4 skipped: %s does not describe this kit (%d ids, %d in ranges; %s)' % (
            repos_tsv, len(ids), len(lang_of), counts))
        return None
    kept = {ids[p] for p in keep}
    queries = [dict(q, kw=[x for x in q['kw'] if x in kept]) for q in g['queries']
               if q['language'] in FIRST_FOUR]
    return dict(name=g['name'] + '-4', benchmark='public-4', parent=g['name'], keep=keep,
                snippets=[g['snippets'][p] for p in keep], queries=queries)


def score_group(g, enc, cache):
    ids = np.array([s[0] for s in g['snippets']])
    key = g['name']
    if key not in cache and g.get('parent') in cache:
        cache[key] = cache[g['parent']][g['keep']]
    if key not in cache:
        t0 = time.time()
        cache[key] = enc([s[1] for s in g['snippets']])
        log('  %s: %d snippets embedded in %.1f s' % (g['name'], len(ids), time.time() - t0))
    D = cache[key]
    Q = enc([q['query'] for q in g['queries']])
    top, S = vector_lists(D, Q)
    pos = {int(x): i for i, x in enumerate(ids)}
    out = []
    for qi, q in enumerate(g['queries']):
        t = set(q['targets'])
        tpos = [pos[x] for x in t if x in pos]
        # full vector rank of the best target: 1 + snippets scoring higher
        st = max(S[qi, p] for p in tpos) if tpos else None
        vrank = int((S[qi] > st).sum()) + 1 if tpos else 0
        vlist = [int(ids[j]) for j in top[qi]]
        r = dict(qid=q['qid'], language=q['language'], split=q['split'], vector=vrank,
                 keyword=best_rank(q['kw'], t), hybrid={})
        for k in RRF_KS:
            for w in WEIGHTS:
                r['hybrid']['%g/%g' % (k, w)] = best_rank(fuse(vlist, q['kw'], k, w)[:DEPTH], t)
        if 'ref_vector' in q:
            r['same_vector_top10'] = vlist[:10] == q['ref_vector']
            r['same_hybrid_top10'] = fuse(vlist, q['kw'], *DEFAULT_FUSION)[:10] == q['ref_hybrid']
        out.append(r)
    return out


# ---------------------------------------------------------------- metrics

def rr(rank):
    return 1.0 / rank if 0 < rank <= 10 else 0.0


def metrics(ranks):
    n = len(ranks)
    return dict(n=n, mrr=sum(rr(x) for x in ranks) / n if n else float('nan'),
                r1=sum(1 for x in ranks if x == 1) / n if n else float('nan'),
                r10=sum(1 for x in ranks if 0 < x <= 10) / n if n else float('nan'))


def macro_diff_ci(a_by_lang, b_by_lang, reps=2000, seed=1):
    """Paired bootstrap of mean over languages of mean(RR_a - RR_b), stratified."""
    rng = np.random.default_rng(seed)
    diffs = {l: np.array(a_by_lang[l]) - np.array(b_by_lang[l]) for l in a_by_lang}
    point = float(np.mean([d.mean() for d in diffs.values()]))
    boots = np.zeros(reps)
    for l, d in diffs.items():
        boots += d[rng.integers(0, len(d), (reps, len(d)))].mean(1)
    boots /= len(diffs)
    return point, float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def mode_ranks(r, mode):
    if mode in ('vector', 'keyword'):
        return r[mode]
    return r['hybrid'][mode]


def report(res, baseline):
    """Markdown: one table per benchmark and split."""
    lines = []
    models = list(res['models'])
    benches = sorted({g['benchmark'] for m in res['models'].values() for g in m})
    hyb = '%g/%g' % DEFAULT_FUSION
    for b in benches:
        for split in ('dev', 'test'):
            rows = []
            langs = None
            for m in models:
                qs = [r for g in res['models'][m] if g['benchmark'] == b for r in g['queries']
                      if r['split'] == split]
                if not qs:
                    continue
                langs = sorted({r['language'] for r in qs})
                base = [r for g in res['models'][baseline] if g['benchmark'] == b
                        for r in g['queries'] if r['split'] == split]
                for mode, label in (('vector', 'vector'), ('keyword', 'keyword'),
                                    (hyb, 'hybrid (rrf_k %g, keyword_weight %g)' % DEFAULT_FUSION)):
                    if mode == 'keyword' and m != models[0]:
                        continue
                    by = {l: [rr(mode_ranks(r, mode)) for r in qs if r['language'] == l] for l in langs}
                    bb = {l: [rr(mode_ranks(r, mode)) for r in base if r['language'] == l] for l in langs}
                    macro = float(np.mean([np.mean(v) for v in by.values()]))
                    allm = metrics([mode_ranks(r, mode) for r in qs])
                    if m != baseline and mode != 'keyword':
                        p, lo, hi = macro_diff_ci(by, bb)
                        ci = '%+.3f (%+.3f..%+.3f)' % (p, lo, hi)
                    else:
                        ci = '—'
                    rows.append('| %s | %s | %s | **%.3f** | %s | %.3f | %.3f | %d |' % (
                        os.path.basename(m.rstrip('/')) if mode != 'keyword' else 'any model',
                        label, ' | '.join('%.3f' % np.mean(by[l]) for l in langs), macro, ci,
                        allm['r1'], allm['r10'], allm['n']))
            if not rows:
                continue
            lines.append('### %s, %s half (MRR@10; macro = mean over languages; '
                         'difference to %s with paired-bootstrap 95%% CI)\n' % (
                             b, split, os.path.basename(baseline.rstrip('/'))))
            lines.append('| model | mode | %s | macro | vs baseline | R@1 | R@10 | n |' % ' | '.join(langs))
            lines.append('|---|---|%s---:|---|---:|---:|---:|' % ('---:|' * len(langs)))
            lines += rows
            lines.append('')
    return '\n'.join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('kit')
    ap.add_argument('folders', nargs='*')
    ap.add_argument('--out', default='results-ood.json')
    ap.add_argument('--baseline')
    ap.add_argument('--backend', choices=('auto', 'torch', 'numpy', 'codevec'), default='auto')
    ap.add_argument('--precision', choices=('int8', 'fp32'),
                    help='codevec backend: codevec.cpu_precision (default the server\'s)')
    ap.add_argument('--only', help='comma list of group names or benchmarks')
    ap.add_argument('--verify', action='store_true')
    ap.add_argument('--selfcheck', type=int, default=0)
    ap.add_argument('--report-only', action='store_true', help='print the report of --out')
    ap.add_argument('--merge', nargs='+', help='results files of separate runs: one --out with all models')
    args = ap.parse_args()
    if args.merge:
        res = None
        for p in args.merge:
            r = json.load(open(p))
            if res is None:
                res = r
                continue
            for m, groups in r['models'].items():
                # a model of several runs (other benchmarks each) keeps every
                # group; a group scored again replaces the earlier one
                names = {g['name'] for g in groups}
                res['models'][m] = [g for g in res['models'].get(m, []) if g['name'] not in names] + groups
        res['baseline'] = args.baseline or next(
            (m for m in res['models'] if 'all-MiniLM-L6-v2' in m), res['baseline'])
        with open(args.out, 'w') as fo:
            json.dump(res, fo)
        args.report_only = True
    if args.report_only:
        res = json.load(open(args.out))
        print(report(res, res['baseline']))
        return
    kit = json.load(gzip.open(args.kit, 'rt', encoding='utf-8'))
    groups = kit['groups']
    if args.verify:
        groups = [g for g in groups if g['benchmark'] == 'verify']
    elif not args.selfcheck:
        groups = [g for g in groups if g['benchmark'] != 'verify']
    if args.only:
        want = args.only.split(',')
        groups = [g for g in groups if g['name'] in want or g['benchmark'] in want]
    for g in list(groups):
        if g['benchmark'] == 'public' and not args.selfcheck:
            sub = first_four_group(g)
            if sub:
                groups.insert(groups.index(g) + 1, sub)
    baseline = args.baseline or next((f for f in args.folders if 'all-MiniLM-L6-v2' in f),
                                     args.folders[0])
    if args.selfcheck:
        texts = [s[1] for g in groups for s in g['snippets'][:args.selfcheck]][:args.selfcheck]
        texts += [q['query'] for q in groups[0]['queries'][:50]]
        for f in args.folders:
            a = TorchEncoder(f)(texts)
            b = NumpyEncoder(f)(texts)
            cos = (a * b).sum(1)
            print('%s: torch vs numpy over %d texts: min cosine %.6f, mean %.6f' % (
                f, len(texts), cos.min(), cos.mean()))
        return
    res = dict(kit_created=kit['created'], kit_commit=kit['commit'], baseline=baseline,
               models={})
    for f in args.folders:
        t0 = time.time()
        enc = encoder(f, args.backend, args.precision)
        log('%s (%s%s)' % (f, type(enc).__name__, ' %s' % (enc.info,) if hasattr(enc, 'info') else ''))
        cache = {}
        res['models'][f] = [dict(benchmark=g['benchmark'], name=g['name'],
                                 queries=score_group(g, enc, cache)) for g in groups]
        log('  %.1f s' % (time.time() - t0))
    with open(args.out, 'w') as fo:
        json.dump(res, fo)
    if args.verify:
        for f, gs in res['models'].items():
            qs = [r for g in gs for r in g['queries']]
            print('%s: same vector top 10 as code.search: %d/%d; same hybrid top 10: %d/%d' % (
                f, sum(r['same_vector_top10'] for r in qs), len(qs),
                sum(r['same_hybrid_top10'] for r in qs), len(qs)))
    print(report(res, baseline))


if __name__ == '__main__':
    main()
