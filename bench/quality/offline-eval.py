#!/usr/bin/env python3
"""bench/quality/offline-eval.py — vector-mode MRR@10 of model folders on
the benchmark, outside PostgreSQL (PyTorch + transformers, a GPU when there
is one): a quick check of a model before loading a database with it.

  offline-eval.py export OUT.json.gz   from a loaded benchmark database
        (libpq PG* variables): every snippet's id and embed_text, every
        query with its target id (eval.py's resolve_targets)
  offline-eval.py score SET.json.gz FOLDER...   for each model folder:
        mean-pooled, L2-normalised embeddings (codevec's pooling) of the
        snippets (256 tokens) and queries, exact cosine ranking over the
        whole corpus, MRR@10 overall and per language

Exact ranking over the same embed_texts is what code.search's vector mode
does with a flat gpuivf index, so for the default model this reproduces
code.search's vector MRR@10 up to float rounding (0.3399 here vs 0.3404
through code.search, all-MiniLM-L6-v2 with F16 weights); results.md's
numbers are code.search's, not this script's.
"""

import gzip
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def export(out):
    sys.path.insert(0, HERE)
    import psycopg
    from eval import read_queries, resolve_targets
    conn = psycopg.connect(autocommit=True)
    qs = resolve_targets(conn, read_queries(os.path.join(HERE, 'queries.tsv.gz')))
    cur = conn.cursor()
    cur.execute("SELECT id, embed_text FROM code.snippets ORDER BY id")
    with gzip.open(out, 'wt', encoding='utf-8') as f:
        json.dump(dict(snippets=cur.fetchall(),
                       queries=[dict(query=q['query'], language=q['language'], target=q['target'])
                                for q in qs]), f)


def score(path, folders):
    import torch
    import torch.nn.functional as F
    from transformers import AutoModel, AutoTokenizer
    d = json.load(gzip.open(path, 'rt', encoding='utf-8'))
    ids = [s[0] for s in d['snippets']]
    texts = [s[1] for s in d['snippets']]
    pos = {i: k for k, i in enumerate(ids)}
    dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')

    @torch.no_grad()
    def embed(model, tok, xs):
        out = []
        for i in range(0, len(xs), 256):
            b = tok(xs[i:i + 256], padding=True, truncation=True, max_length=256,
                    return_tensors='pt').to(dev)
            h = model(**b).last_hidden_state
            m = b['attention_mask'].unsqueeze(-1).to(h.dtype)
            out.append(F.normalize((h * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=-1))
        return torch.cat(out)

    for folder in folders:
        tok = AutoTokenizer.from_pretrained(folder)
        model = AutoModel.from_pretrained(folder).float().to(dev).eval()
        D = embed(model, tok, texts)
        Q = embed(model, tok, [q['query'] for q in d['queries']])
        S = Q @ D.T
        t = torch.tensor([pos[q['target']] for q in d['queries']], device=dev)
        st = S[torch.arange(len(t), device=dev), t]
        rank = (S > st[:, None]).sum(1) + 1
        rr = torch.where(rank <= 10, 1.0 / rank.float(), torch.zeros_like(rank, dtype=torch.float))
        by = {}
        for q, r in zip(d['queries'], rr.tolist()):
            by.setdefault(q['language'], []).append(r)
        print(folder, 'MRR@10 %.4f' % rr.mean().item(),
              ' '.join('%s %.3f' % (l, sum(v) / len(v)) for l, v in sorted(by.items())), flush=True)


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == 'export':
        export(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == 'score':
        score(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(__doc__)


if __name__ == '__main__':
    main()
