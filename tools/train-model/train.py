#!/usr/bin/env python3
"""tools/train-model/train.py — fine-tune a BERT-family sentence encoder for
code search on (query, code) pairs from build-pairs.py.

Loss: in-batch negatives softmax over scaled cosine similarities (InfoNCE,
van den Oord et al. 2018, arXiv:1807.03748; as sentence-transformers'
MultipleNegativesRankingLoss, Henderson et al. 2017, arXiv:1705.00652, with
its default scale 20): each query's positive is its own code, every other
code of the batch a negative.  Pooling and normalisation are the model's own
(mean over tokens, L2), so what is trained is what codevec's embed() computes.

Hyper-parameters are fixed before any benchmark run (lr 2e-5, AdamW, weight
decay 0.01, 10% linear warm-up then linear decay, batch 128, query 64 and
code 256 tokens, seed 42); the number of epochs (1..--epochs) is chosen on a
held-out dev split of the training pairs (the packages whose name hashes to
0 mod 20), never on the benchmark.

  train.py --base DIR --pairs pairs.jsonl.gz --out DIR [--epochs 3]
           [--batch 128] [--lr 2e-5] [--dtype float32|float16]
           [--styles doc,comment,so] [--languages go,python,...]
           [--cap so=40000] [--idfree 0.5] [--webq 0.3]
           [--hard-negatives 1 --mine-range 3,30 [--mine-with DIR]]
           [--ood-kit KIT.json.gz [--ood-groups cosqa,staqc,hand]
            [--eval-every STEPS]]

Mixtures (issue 27): --styles keeps the pairs of those query styles
(build-pairs.py: doc, comment, so; pairs without a style are doc);
--languages keeps those languages; --idfree P gives each doc pair that has
an identifier-free rewrite that rewrite as its query with probability P,
drawn again every epoch from the seed; --webq P then gives each doc pair
its web-query rewrite (webquery.py: "python check if file exists" for
"Returns whether the file exists.") with probability P, drawn the same way.
The dev split is always the doc
pairs of the held-out packages (a repo 'PACKAGE/PART' counts as PACKAGE)
with their own queries, so runs with different mixtures are compared on the
same dev set; dev MRR@10 of the other styles is logged beside it.

--cap STYLE=N[,STYLE=N...] keeps at most N training pairs of that style (a
seeded sample), so one data set can be mixed in at several ratios.

Checkpoints on the out-of-distribution dev halves (--ood-kit, issue 27:
"choose checkpoints and mixtures on the out-of-distribution dev splits,
never on their test splits"): the model is scored after every epoch (and
every --eval-every steps) on the dev queries of the kit's groups of those
benchmarks (bench/quality/ood/make-kit.py: every snippet's embed_text, the
queries with their targets), vector MRR@10 exactly as eval-models.py
computes it (exact cosine over the group's snippets, 256 tokens, the rank
of the best-ranked target), macro-averaged over (benchmark, language)
cells as choose.py averages them; the checkpoint kept is the best by that
macro (the train-split dev MRR@10 is still logged).  Test halves are
never read.

Hard negatives (--hard-negatives K): before training, the starting model
(or --mine-with DIR: another model, e.g. the shipped models/code-minilm-l6,
"hard negatives mined with the current model") embeds every training query and text (a mining pass); each pair gets K
negatives drawn (seeded) from the texts ranked --mine-range (1-based,
inclusive; the pair's own text skipped) by cosine to its query, leaving
out texts of the pair's own function (build-pairs' "fn") or query.  In a batch each query
is scored against every positive and every negative of the batch (the
in-batch softmax over B x (1 + K) texts, as MultipleNegativesRankingLoss
with hard negatives).  The ranks skip the very top to avoid false
negatives (texts that answer the query as well).

Writes a complete sentence-transformers folder to --out (the base folder's
tokenizer, pooling and config files, the tuned model.safetensors) and
train-log.json beside it (dev MRR@10 before and after each epoch, the
arguments, the mixture's counts, the mining statistics).
Needs torch and transformers (any recent version; CUDA when present).
"""

import argparse
import collections
import gzip
import hashlib
import json
import os
import random
import shutil
import sys
import time

import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import webquery  # noqa: E402 (this folder's: the --webq rewrite; also when loaded by path)

START = time.time()
COPY = ['config.json', 'vocab.txt', 'tokenizer_config.json', 'tokenizer.json',
        'special_tokens_map.json', 'modules.json', 'sentence_bert_config.json',
        'config_sentence_transformers.json', '1_Pooling/config.json']


def log(*a):
    print(*a, flush=True)


def is_dev(repo):
    """Held-out package: a repo 'PACKAGE/PART' (a large package split into
    rows) is held out with its whole package."""
    pkg = repo.split('/')[0]
    return int(hashlib.sha1(pkg.encode()).hexdigest(), 16) % 20 == 0


def embed(model, tok, texts, max_len, dev, grad=False):
    b = tok(texts, padding=True, truncation=True, max_length=max_len, return_tensors='pt').to(dev)
    with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == 'cuda'):
        h = model(**b).last_hidden_state
    m = b['attention_mask'].unsqueeze(-1).to(h.dtype)
    v = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return F.normalize(v.float(), dim=-1)


@torch.no_grad()
def embed_all(model, tok, texts, max_len, dev, bs=256):
    return torch.cat([embed(model, tok, texts[i:i + bs], max_len, dev)
                      for i in range(0, len(texts), bs)])


@torch.no_grad()
def dev_mrr(model, tok, dev_pairs, dev, args):
    if not dev_pairs:
        return 0.0
    model.eval()
    Q = embed_all(model, tok, [p['query'] for p in dev_pairs], args.query_len, dev)
    D = embed_all(model, tok, [p['text'] for p in dev_pairs], args.text_len, dev)
    S = Q @ D.T
    target = S.diagonal().unsqueeze(1)
    rank = (S > target).sum(1) + 1
    rr = torch.where(rank <= 10, 1.0 / rank.float(), torch.zeros_like(rank, dtype=torch.float))
    model.train()
    return round(rr.mean().item(), 4)


def load_ood(path, benches):
    """The dev halves of an eval kit's groups of BENCHES: [(benchmark,
    snippet texts, ids, [(language, query, target ids)])]."""
    with gzip.open(path, 'rt', encoding='utf-8') as f:
        kit = json.load(f)
    out = []
    for g in kit['groups']:
        if g['benchmark'] not in benches:
            continue
        qs = [(q['language'], q['query'], set(q['targets'])) for q in g['queries']
              if q['split'] == 'dev']
        if qs:
            out.append((g['benchmark'], [s[1] for s in g['snippets']],
                        [s[0] for s in g['snippets']], qs))
    missing = set(benches) - {b for b, _, _, _ in out}
    if missing:
        log('--ood-kit: no dev queries of %s in %s' % (','.join(sorted(missing)), path))
    return out


@torch.no_grad()
def ood_mrr(model, tok, groups, dev):
    """Vector MRR@10 of the OOD dev queries (eval-models.py's ranking):
    {'macro': mean over (benchmark, language) cells, 'cells': {...}}."""
    if not groups:
        return None
    model.eval()
    cells = {}
    # 256 tokens as codevec.max_tokens and eval-models.py (less only for a
    # test model with fewer positions)
    n = min(256, model.config.max_position_embeddings)
    for bench, texts, ids, qs in groups:
        D = embed_all(model, tok, texts, n, dev)
        Q = embed_all(model, tok, [q for _, q, _ in qs], n, dev)
        S = Q @ D.T
        pos = {x: i for i, x in enumerate(ids)}
        for qi, (lang, _, targets) in enumerate(qs):
            tp = [pos[t] for t in targets if t in pos]
            rank = int((S[qi] > S[qi, tp].max()).sum().item()) + 1 if tp else 0
            cells.setdefault('%s/%s' % (bench, lang), []).append(
                1.0 / rank if 0 < rank <= 10 else 0.0)
    model.train()
    cm = {k: round(sum(v) / len(v), 4) for k, v in sorted(cells.items())}
    return dict(macro=round(sum(cm.values()) / len(cm), 4), cells=cm)


def norm_query(q):
    return ' '.join(''.join(c if c.isalnum() else ' ' for c in q.lower()).split())


@torch.no_grad()
def mine(model, tok, train, dev, args):
    """Hard negatives of every training pair (see the module doc): lists of
    K indexes into train, and statistics for the log."""
    lo, hi = (int(x) for x in args.mine_range.split(','))
    model.eval()
    t0 = time.time()
    Q = embed_all(model, tok, [p['query'] for p in train], args.query_len, dev)
    D = embed_all(model, tok, [p['text'] for p in train], args.text_len, dev)
    if dev.type == 'cuda':
        Q, D = Q.half(), D.half()
    # the same function (its doc and comment pairs: 'fn'), the same text or
    # the same query is no negative
    tkey = {}
    tid = torch.tensor([tkey.setdefault(p.get('fn') or p['text'], len(tkey)) for p in train],
                       device=dev)
    qkey = {}
    qid = torch.tensor([qkey.setdefault(norm_query(p['query']), len(qkey)) for p in train],
                       device=dev)
    rng = random.Random(args.seed + 1)
    negs = []
    picked_rank = []
    chunk = 2048 if dev.type == 'cuda' else 256
    for i in range(0, len(train), chunk):
        S = Q[i:i + chunk] @ D.T
        top = S.topk(min(hi + 8, S.shape[1]), dim=1).indices   # spare ones for skips
        same = (tid[top] == tid[i:i + chunk, None]) | (qid[top] == qid[i:i + chunk, None])
        top, same = top.tolist(), same.tolist()
        for r in range(len(top)):
            cand = [(k + 1, j) for k, j in enumerate(x for x, sm in zip(top[r], same[r]) if not sm)]
            cand = [(k, j) for k, j in cand if lo <= k <= hi]
            pick = rng.sample(cand, min(args.hard_negatives, len(cand)))
            negs.append([j for _, j in pick])
            picked_rank.extend(k for k, _ in pick)
    model.train()
    stats = dict(seconds=round(time.time() - t0, 1), pairs=len(train),
                 negatives=sum(len(n) for n in negs), range=[lo, hi],
                 mean_rank=round(sum(picked_rank) / max(1, len(picked_rank)), 2))
    return negs, stats


def optimizer(model, lr, total):
    """AdamW (weight decay 0.01) with 10% linear warm-up then linear decay
    to 0 at step TOTAL: (optimizer, scheduler)."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, int(0.1 * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warm, max(0.0, (total - s) / max(1, total - warm))))
    return opt, sched


def train_step(model, opt, sched, loss):
    """One optimizer step on LOSS (gradients clipped to norm 1.0); its value."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    return loss.item()


def save(model, base, out, dtype):
    os.makedirs(out, exist_ok=True)
    for f in COPY:
        src = os.path.join(base, f)
        if os.path.exists(src):
            os.makedirs(os.path.dirname(os.path.join(out, f)) or out, exist_ok=True)
            shutil.copyfile(src, os.path.join(out, f))
    if os.path.isdir(os.path.join(base, '2_Normalize')):
        os.makedirs(os.path.join(out, '2_Normalize'), exist_ok=True)
    from safetensors.torch import save_file
    sd = {k: v.detach().to('cpu', getattr(torch, dtype)).contiguous()
          for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(out, 'model.safetensors'), metadata={'format': 'pt'})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--base', required=True)
    ap.add_argument('--pairs', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--epochs', type=int, default=3)
    ap.add_argument('--batch', type=int, default=128)
    ap.add_argument('--lr', type=float, default=2e-5)
    ap.add_argument('--scale', type=float, default=20.0)
    ap.add_argument('--query-len', type=int, default=64)
    ap.add_argument('--text-len', type=int, default=256)
    ap.add_argument('--seed', type=int, default=42)
    ap.add_argument('--dtype', default='float32', choices=['float32', 'float16'])
    ap.add_argument('--max-steps', type=int, default=0, help='stop early (a smoke test)')
    ap.add_argument('--styles', default='doc,comment,so',
                    help='query styles trained on (comma-separated)')
    ap.add_argument('--languages', default='', help='languages trained on (default all)')
    ap.add_argument('--cap', default='',
                    help='STYLE=N,...: at most N training pairs of that style (seeded sample)')
    ap.add_argument('--mine-with', help='mine the hard negatives with this model folder '
                                        '(default: the starting model)')
    ap.add_argument('--ood-kit', help="an eval kit (make-kit.py): choose the checkpoint by "
                                      "vector MRR@10 on its OOD groups' dev queries")
    ap.add_argument('--ood-groups', default='cosqa,staqc,hand',
                    help='benchmarks of the kit that choose (dev halves only)')
    ap.add_argument('--eval-every', type=int, default=0,
                    help='with --ood-kit: also score (and keep if best) every N steps')
    ap.add_argument('--idfree', type=float, default=0.0,
                    help='probability that a doc pair is trained with its identifier-free query')
    ap.add_argument('--webq', type=float, default=0.0,
                    help='probability that a doc pair trains with its web-query rewrite '
                    '(webquery.py)')
    ap.add_argument('--hard-negatives', type=int, default=0, help='mined negatives per pair')
    ap.add_argument('--mine-range', default='3,30', help='ranks the negatives are drawn from')
    ap.add_argument('--max-seconds', type=int, default=0,
                    help='stop taking steps once this many seconds have passed since the '
                         'start (the last epoch is then a partial one, scored and kept if best)')
    ap.add_argument('--dev-max', type=int, default=5000,
                    help='dev pairs scored (a seeded sample when there are more)')
    args = ap.parse_args()

    random.seed(args.seed)
    torch.manual_seed(args.seed)
    dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    with gzip.open(args.pairs, 'rt', encoding='utf-8') as f:
        pairs = [json.loads(l) for l in f]
    for p in pairs:
        p.setdefault('style', 'doc')
    styles = set(args.styles.split(','))
    langs = set(args.languages.split(',')) if args.languages else None
    keep = lambda p: p['style'] in styles and (langs is None or p['language'] in langs)
    train = [p for p in pairs if not is_dev(p['repo']) and keep(p)]
    for c in filter(None, args.cap.split(',')):
        st, n = c.split('=')
        these = [i for i, p in enumerate(train) if p['style'] == st]
        if len(these) > int(n):
            drop = set(these) - set(random.Random(args.seed + 3).sample(these, int(n)))
            train = [p for i, p in enumerate(train) if i not in drop]
            log('--cap %s: %d of %d %s pairs kept' % (c, int(n), len(these), st))
    # dev: the held-out packages' doc pairs (whatever the mixture), sampled
    # to --dev-max with a fixed seed so that every run scores the same set
    dev_all = [p for p in pairs if is_dev(p['repo']) and p['style'] == 'doc']
    dev_pairs = sorted(dev_all, key=lambda p: (p['language'], p['repo'], p['query']))
    if len(dev_pairs) > args.dev_max:
        dev_pairs = random.Random(7).sample(dev_pairs, args.dev_max)
    dev_other = {st: [p for p in pairs if is_dev(p['repo']) and p['style'] == st][:args.dev_max]
                 for st in sorted({p['style'] for p in pairs} - {'doc'})}
    dev_idfree = [dict(p, query=p['query_idfree']) for p in dev_pairs if p.get('query_idfree')]
    wrng = random.Random(11)
    dev_webq = [dict(p, query=w) for p in dev_pairs
                for w in [webquery.rewrite(p['query'], p['language'], wrng)] if w]
    mix = collections.Counter('%s/%s' % (p['language'], p['style']) for p in train)
    log('pairs %d: train %d, dev %d doc pairs (%d packages); device %s' % (
        len(pairs), len(train), len(dev_pairs),
        len({p['repo'].split('/')[0] for p in dev_pairs}), dev))
    log('mixture: %s' % dict(sorted(mix.items())))

    tok = AutoTokenizer.from_pretrained(args.base)
    model = AutoModel.from_pretrained(args.base).float().to(dev)
    model.train()
    steps_per_epoch = len(train) // args.batch
    total = steps_per_epoch * args.epochs
    if args.max_steps:
        total = min(total, args.max_steps)
    opt, sched = optimizer(model, args.lr, total)

    def dev_scores():
        out = {'idfree': dev_mrr(model, tok, dev_idfree, dev, args),
               'webq': dev_mrr(model, tok, dev_webq, dev, args)}
        for st, ps in dev_other.items():
            out[st] = dev_mrr(model, tok, ps, dev, args)
        return out

    hist = dict(args=vars(args), train_pairs=len(train), dev_pairs=len(dev_pairs),
                mixture=dict(sorted(mix.items())),
                dev_other_pairs=dict({st: len(ps) for st, ps in dev_other.items()},
                                     idfree=len(dev_idfree), webq=len(dev_webq)),
                dev_mrr10={'0': dev_mrr(model, tok, dev_pairs, dev, args)},
                dev_other_mrr10={'0': dev_scores()}, epochs=[])
    log('dev MRR@10 before: %.4f (other dev sets: %s)' % (hist['dev_mrr10']['0'],
                                                          hist['dev_other_mrr10']['0']))
    negs = None
    if args.hard_negatives:
        if args.mine_with:
            mm = AutoModel.from_pretrained(args.mine_with).float().to(dev)
            negs, hist['mining'] = mine(mm, AutoTokenizer.from_pretrained(args.mine_with),
                                        train, dev, args)
            hist['mining']['model'] = args.mine_with
            del mm
        else:
            negs, hist['mining'] = mine(model, tok, train, dev, args)
        log('mined %s' % hist['mining'])
    ood = load_ood(args.ood_kit, args.ood_groups.split(',')) if args.ood_kit else None
    by = 'OOD dev macro MRR@10' if ood else 'dev MRR@10'
    if ood:
        hist['ood_dev_queries'] = {b: len(qs) for b, _, _, qs in ood}
        hist['ood_dev_mrr10'] = {'0': ood_mrr(model, tok, ood, dev)}
        log('OOD dev before: %s' % hist['ood_dev_mrr10']['0'])
    # (score, epoch, step) of the checkpoint kept: on the OOD dev halves
    # when a kit is given, else on the train-split dev pairs
    best = (hist['ood_dev_mrr10']['0']['macro'] if ood else hist['dev_mrr10']['0'], 0, 0)
    step = 0
    rng = random.Random(args.seed)
    qrng = random.Random(args.seed + 2)
    out_of_time = False
    t0 = time.time()
    for ep in range(1, args.epochs + 1):
        order = list(range(len(train)))
        rng.shuffle(order)
        run = 0.0
        for i in range(steps_per_epoch):
            if step >= total:
                break
            if args.max_seconds and time.time() - START > args.max_seconds:
                out_of_time = True
                break
            idx = order[i * args.batch:(i + 1) * args.batch]
            batch = [train[j] for j in idx]
            qs = [p['query_idfree'] if p.get('query_idfree') and qrng.random() < args.idfree
                  else p['query'] for p in batch]
            if args.webq:
                qs = [(p['style'] == 'doc' and qrng.random() < args.webq and
                       webquery.rewrite(q, p['language'], qrng)) or q for q, p in zip(qs, batch)]
            texts = [p['text'] for p in batch]
            if negs is not None:
                texts += [train[k]['text'] for j in idx for k in negs[j]]
            q = embed(model, tok, qs, args.query_len, dev)
            d = embed(model, tok, texts, args.text_len, dev)
            loss = F.cross_entropy(args.scale * (q @ d.T), torch.arange(len(batch), device=dev))
            run += train_step(model, opt, sched, loss)
            step += 1
            if step % 100 == 0:
                log('epoch %d step %d/%d loss %.4f (%.0f s)' % (ep, step, total, run / 100,
                                                                 time.time() - t0))
                run = 0.0
            if ood and args.eval_every and step % args.eval_every == 0 and i + 1 < steps_per_epoch:
                o = ood_mrr(model, tok, ood, dev)
                hist['ood_dev_mrr10']['step %d' % step] = o
                log('OOD dev at step %d: %s' % (step, o))
                if o['macro'] > best[0]:
                    best = (o['macro'], ep, step)
                    save(model, args.base, args.out, args.dtype)
        m = dev_mrr(model, tok, dev_pairs, dev, args)
        hist['dev_mrr10'][str(ep)] = m
        hist['dev_other_mrr10'][str(ep)] = dev_scores()
        log('other dev sets after epoch %d: %s' % (ep, hist['dev_other_mrr10'][str(ep)]))
        hist['epochs'].append(dict(epoch=ep, steps=step, seconds=round(time.time() - t0, 1)))
        log('dev MRR@10 after epoch %d: %.4f' % (ep, m))
        score = m
        if ood:
            o = ood_mrr(model, tok, ood, dev)
            hist['ood_dev_mrr10'][str(ep)] = o
            log('OOD dev after epoch %d: %s' % (ep, o))
            score = o['macro']
        if score > best[0]:
            best = (score, ep, step)
            save(model, args.base, args.out, args.dtype)
        if step >= total or out_of_time:
            if out_of_time:
                hist['stopped'] = 'after %d steps (%d s since the start): --max-seconds %d' % (
                    step, time.time() - START, args.max_seconds)
                log(hist['stopped'])
            break
    hist['chosen_epoch'] = best[1]
    hist['chosen'] = dict(epoch=best[1], step=best[2], score=best[0], by=by)
    if best[1] == 0:
        save(model.__class__.from_pretrained(args.base).float(), args.base, args.out, args.dtype)
    log('chosen: epoch %d, step %d (%s %.4f)' % (best[1], best[2], by, best[0]))
    with open(os.path.join(args.out, 'train-log.json'), 'w') as f:
        json.dump(hist, f, indent=1)


if __name__ == '__main__':
    main()
