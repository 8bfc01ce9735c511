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
sys.path.insert(0, HERE)
import choose  # noqa: E402


def _load(name, file):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, file))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


make_kit = _load('make_kit', 'make-kit.py')
eval_models = _load('eval_models', 'eval-models.py')

DEPTH = eval_models.DEPTH
RRF_K, KEYWORD_WEIGHT = eval_models.DEFAULT_FUSION      # code.search's defaults


def fuse(vec, kw):
    """code.search's hybrid order of two lists of ids at its default fusion
    (eval-models.py's fuse: weighted RRF, ties by id)."""
    return eval_models.fuse(vec, kw, RRF_K, KEYWORD_WEIGHT)


def rr(ids, targets):
    """Reciprocal rank of the best-ranked target in the top 10, else 0."""
    return choose.rr(eval_models.best_rank(ids[:10], targets))


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
