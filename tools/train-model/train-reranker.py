#!/usr/bin/env python3
"""tools/train-model/train-reranker.py — fine-tune a cross-encoder re-ranker
for code search (issue 14, item 5) from a BERT-family encoder, on the same
(query, code) pairs as train.py.

  train-reranker.py --base DIR --pairs pairs.jsonl.gz --out DIR
                    [--mine-with DIR] [--kit KIT.json.gz] [--epochs 1]
                    [--batch 32] [--group 8] [--lr 3e-5] [--webq 0.5]
                    [--idfree 0.3] [--styles doc,comment,so]
                    [--mine-range 3,50] [--eval-every 500] [--max-seconds 0]
                    [--max-pairs N] [--max-steps N]

Model: transformers' BertForSequenceClassification with one label (the
architecture of sentence-transformers' CrossEncoder and of the MS MARCO
cross-encoders, Nogueira & Cho 2019, arXiv:1901.04085): the input is
"[CLS] query [SEP] code [SEP]" with token types 0 / 1, the score is
classifier(tanh(pooler(h_CLS))).  The encoder starts from --base (the
shipped bi-encoder, so the re-ranker is "fine-tuned from the same base");
pooler and classifier start as the base's pooler (if it has one) and a
fresh linear layer.

Loss: a listwise softmax cross-entropy over groups of --group texts per
query (its own code first, then --group - 1 hard negatives), as
sentence-transformers' MultipleNegativesRankingLoss is for bi-encoders and
as "localized contrastive estimation" (Gao et al. 2021, arXiv:2101.08751)
trains re-rankers.  Hard negatives are mined with --mine-with (default
--base; a bi-encoder, mean pooling) exactly as train.py mines them
(train.mine: the texts ranked --mine-range by cosine, leaving out the
pair's own function and query), so the negatives are what the first stage
returns.

Query styles as train.py: --styles, --idfree P, --webq P (webquery.py),
drawn again every step from the seed.  Queries are cut to 64 tokens, pairs
to 256 (the code cut first).

Checkpoints (--kit, an eval kit of bench/quality/ood/make-kit.py): after
every epoch and every --eval-every steps the re-ranker re-orders the first
--depth (50) of code.search's hybrid list under --mine-with for the dev
halves of the kit's cosqa, staqc, hand and public groups
(bench/quality/ood/rerank-eval.py's candidates and rerank); the checkpoint
kept is the best by the macro over (benchmark, language) cells of MRR@10.
Test halves are never read.  Without --kit the last step is kept.

Writes the model folder (config with num_labels 1, float16 safetensors,
the base's tokenizer files) and train-log.json to --out.  Hyper-parameters
as train.py's, fixed before any benchmark run: AdamW, weight decay 0.01,
10% linear warm-up then linear decay, gradient clip 1.0, seed 42.
Needs torch and transformers (CUDA when present).
"""

import argparse
import collections
import gzip
import importlib.util
import json
import os
import random
import shutil
import time

import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

import train     # this folder's: is_dev, mine, optimizer, train_step
import webquery  # this folder's: the --webq rewrite

START = time.time()
HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    'rerank_eval', os.path.join(HERE, '..', '..', 'bench', 'quality', 'ood', 'rerank-eval.py'))
rerank_eval = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rerank_eval)


def log(*a):
    print(*a, flush=True)


def dev_candidates(kit_path, bi_folder, benches):
    """[(benchmark, {id: text}, candidates)] of the kit's dev halves."""
    with gzip.open(kit_path, 'rt', encoding='utf-8') as f:
        kit = json.load(f)
    bi = rerank_eval.em.TorchEncoder(bi_folder)
    out = []
    for g in kit['groups']:
        if g['benchmark'] not in benches:
            continue
        c = rerank_eval.candidates(g, bi, split='dev')
        if c:
            out.append((g['benchmark'], {s[0]: s[1] for s in g['snippets']}, c))
    del bi
    torch.cuda.empty_cache()
    return out


def dev_score(ce, groups, depth):
    """Macro over (benchmark, language) of the re-ranked dev MRR@10, and the cells."""
    ce.model.eval()
    cells = collections.defaultdict(list)
    for bench, text_of, cands in groups:
        for (q, _, _), rl in zip(cands, rerank_eval.rerank(cands, text_of, ce, depth)):
            cells['%s/%s' % (bench, q['language'])].append(
                rerank_eval.em.rr(rerank_eval.em.best_rank(rl, set(q['targets']))))
    ce.model.train()
    cm = {k: round(sum(v) / len(v), 4) for k, v in sorted(cells.items())}
    return dict(macro=round(sum(cm.values()) / len(cm), 4), cells=cm)


def hybrid_score(groups):
    cells = collections.defaultdict(list)
    for bench, _, cands in groups:
        for q, _, hl in cands:
            cells['%s/%s' % (bench, q['language'])].append(
                rerank_eval.em.rr(rerank_eval.em.best_rank(hl, set(q['targets']))))
    cm = {k: round(sum(v) / len(v), 4) for k, v in sorted(cells.items())}
    return dict(macro=round(sum(cm.values()) / len(cm), 4), cells=cm)


def save(model, base, out):
    os.makedirs(out, exist_ok=True)
    for f in ('vocab.txt', 'tokenizer_config.json', 'tokenizer.json', 'special_tokens_map.json'):
        if os.path.exists(os.path.join(base, f)):
            shutil.copyfile(os.path.join(base, f), os.path.join(out, f))
    model.config.save_pretrained(out)
    from safetensors.torch import save_file
    sd = {k: v.detach().to('cpu', torch.float16).contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(out, 'model.safetensors'), metadata={'format': 'pt'})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--base', required=True)
    ap.add_argument('--pairs', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--mine-with')
    ap.add_argument('--kit')
    ap.add_argument('--kit-groups', default='cosqa,staqc,hand,public')
    ap.add_argument('--depth', type=int, default=50)
    ap.add_argument('--epochs', type=int, default=1)
    ap.add_argument('--batch', type=int, default=32, help='queries per step')
    ap.add_argument('--group', type=int, default=8, help='texts per query (1 + negatives)')
    ap.add_argument('--lr', type=float, default=3e-5)
    ap.add_argument('--seed', type=int, default=42)
    ap.add_argument('--styles', default='doc,comment,so')
    ap.add_argument('--idfree', type=float, default=0.3)
    ap.add_argument('--webq', type=float, default=0.5)
    ap.add_argument('--mine-range', default='3,50')
    ap.add_argument('--eval-every', type=int, default=0)
    ap.add_argument('--max-pairs', type=int, default=0,
                    help='train on a seeded sample of this many pairs (mining is over them only)')
    ap.add_argument('--max-steps', type=int, default=0)
    ap.add_argument('--max-seconds', type=int, default=0)
    args = ap.parse_args()
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    with gzip.open(args.pairs, 'rt', encoding='utf-8') as f:
        pairs = [json.loads(l) for l in f]
    styles = set(args.styles.split(','))
    train_pairs = [p for p in pairs if not train.is_dev(p['repo'])
                   and p.get('style', 'doc') in styles]
    if args.max_pairs and len(train_pairs) > args.max_pairs:
        train_pairs = random.Random(args.seed + 5).sample(train_pairs, args.max_pairs)
    mix = collections.Counter('%s/%s' % (p['language'], p.get('style', 'doc')) for p in train_pairs)
    log('pairs %d: train %d; device %s; mixture %s' % (len(pairs), len(train_pairs), dev,
                                                        dict(sorted(mix.items()))))
    mine_with = args.mine_with or args.base
    margs = argparse.Namespace(mine_range=args.mine_range, hard_negatives=args.group - 1,
                               query_len=64, text_len=256, seed=args.seed)
    mm = AutoModel.from_pretrained(mine_with).float().to(dev)
    negs, mstats = train.mine(mm, AutoTokenizer.from_pretrained(mine_with), train_pairs, dev, margs)
    del mm
    log('mined %s' % mstats)
    keep = [i for i, n in enumerate(negs) if len(n) == args.group - 1]
    groups = dev_candidates(args.kit, mine_with, set(args.kit_groups.split(','))) if args.kit else []
    tok = AutoTokenizer.from_pretrained(args.base)
    model = AutoModelForSequenceClassification.from_pretrained(args.base, num_labels=1).float().to(dev)
    model.train()
    ce = rerank_eval.CrossEncoder(None, model=model, tok=tok)
    hist = dict(args=vars(args), train_pairs=len(train_pairs), used=len(keep), mining=mstats,
                mixture=dict(sorted(mix.items())), evals={})
    best = (-1.0, 0)
    if groups:
        hist['hybrid_dev'] = hybrid_score(groups)
        log('dev hybrid (the list re-ranked): %s' % hist['hybrid_dev'])
    steps_per_epoch = len(keep) // args.batch
    total = steps_per_epoch * args.epochs
    if args.max_steps:
        total = min(total, args.max_steps)
    opt, sched = train.optimizer(model, args.lr, total)
    rng, qrng = random.Random(args.seed), random.Random(args.seed + 2)

    evaluated = -1   # the step last scored

    def evaluate(label):
        nonlocal best, evaluated
        if not groups or evaluated == step:
            return
        evaluated = step
        o = dev_score(ce, groups, args.depth)
        hist['evals'][label] = o
        log('dev re-ranked at %s: %s' % (label, o))
        if o['macro'] > best[0]:
            best = (o['macro'], label)
            save(model, args.base, args.out)

    step, t0, stop = 0, time.time(), False
    for ep in range(1, args.epochs + 1):
        order = keep[:]
        rng.shuffle(order)
        run = 0.0
        for i in range(steps_per_epoch):
            if step >= total or (args.max_seconds and time.time() - START > args.max_seconds):
                stop = True
                break
            idx = order[i * args.batch:(i + 1) * args.batch]
            qs, ts = [], []
            for j in idx:
                p = train_pairs[j]
                q = p['query_idfree'] if p.get('query_idfree') and qrng.random() < args.idfree \
                    else p['query']
                if args.webq and p.get('style', 'doc') == 'doc' and qrng.random() < args.webq:
                    q = webquery.rewrite(q, p['language'], qrng) or q
                qs += [q] * args.group
                ts += [p['text']] + [train_pairs[k]['text'] for k in negs[j]]
            b = ce.encode(qs, ts)
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=dev.type == 'cuda'):
                logits = model(**b).logits[:, 0].float().view(len(idx), args.group)
            loss = F.cross_entropy(logits, torch.zeros(len(idx), dtype=torch.long, device=dev))
            run += train.train_step(model, opt, sched, loss)
            step += 1
            if step % 100 == 0:
                log('epoch %d step %d/%d loss %.4f (%.0f s)' % (ep, step, total, run / 100,
                                                                 time.time() - t0))
                run = 0.0
            if args.eval_every and step % args.eval_every == 0:
                evaluate('step %d' % step)
        evaluate('epoch %d (step %d)' % (ep, step))
        if stop:
            hist['stopped'] = 'after %d steps (%d s)' % (step, time.time() - START)
            break
    if not groups:
        save(model, args.base, args.out)
        best = (None, 'last step %d' % step)
    hist['chosen'] = dict(checkpoint=best[1], dev_macro=best[0], steps=step,
                          seconds=round(time.time() - t0, 1))
    log('chosen: %s' % hist['chosen'])
    with open(os.path.join(args.out, 'train-log.json'), 'w') as f:
        json.dump(hist, f, indent=1)


if __name__ == '__main__':
    main()
