"""bench/quality/ood/oodlists.py — code.search's lists on the OOD databases,
for studies that change the keyword side and fuse again as code.search does
(bm25-fields.py, query-rewrite.py).

The databases are build-kit.sh's (cosqa, staqc, hand_<repo>) loaded with
embeddings, so that both lists come from code.search itself; the questions,
their targets and halves are make-kit.py's.
"""
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location('make_kit', os.path.join(HERE, 'make-kit.py'))
make_kit = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_kit)

DEPTH = 100
RRF_K, KEYWORD_WEIGHT = 2, 0.5          # code.search's defaults


def fuse(vec, kw):
    """code.search's hybrid order of two lists of ids (best first): weighted
    RRF, 1/(rrf_k + vector rank) + keyword_weight/(rrf_k + keyword rank),
    ties by id."""
    score = {}
    for r, i in enumerate(vec, 1):
        score[i] = score.get(i, 0.0) + 1.0 / (RRF_K + r)
    for r, i in enumerate(kw, 1):
        score[i] = score.get(i, 0.0) + KEYWORD_WEIGHT / (RRF_K + r)
    return [i for i, _ in sorted(score.items(), key=lambda x: (-x[1], x[0]))]


def rr(ids, targets):
    """Reciprocal rank of the first target in the top 10, else 0."""
    return next((1.0 / r for r, i in enumerate(ids[:10], 1) if i in targets), 0.0)


def groups():
    """(benchmark, database, questions of a connection) of make-kit.py's OOD groups."""
    out = [('cosqa', 'cosqa', make_kit.cosqa_group), ('staqc', 'staqc', make_kit.staqc_group)]
    with open(os.path.join(make_kit.QUALITY, 'handwritten', 'manifest.tsv'), encoding='utf-8') as f:
        for line in f:
            if not line.startswith('#') and line.strip():
                repo = line.split('\t')[0]
                out.append(('hand', 'hand_' + repo.replace('-', '_'),
                            lambda conn, repo=repo: make_kit.hand_group(conn, repo)))
    return out


def lists(cur, query, mode, k=DEPTH):
    """The ids of code.search(query, k, mode), best first."""
    cur.execute("SELECT id FROM code.search(%s, k => %s, mode => %s)", (query, k, mode))
    return [r[0] for r in cur.fetchall()]


def check_fusion(cur, db, q, vec, kw):
    """Stop unless fuse() of the two lists is code.search's own hybrid top 10."""
    if lists(cur, q['query'], 'hybrid', 10) != fuse(vec, kw)[:10]:
        sys.exit("%s: %s: the fusion here is not code.search's" % (db, q['qid']))


def cells(rows, split, key):
    """{(benchmark, language): [value per question in qid order]} of one half."""
    out = {}
    for r in rows:
        if r['split'] == split:
            out.setdefault((r['benchmark'], r['language']), []).append(r[key])
    return out


def only(c, bench):
    """The cells of one benchmark."""
    return {k: v for k, v in c.items() if k[0] == bench}
