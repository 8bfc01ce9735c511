#!/usr/bin/env python3
"""test/trainset/evalcheck.py ROOT TMP MODEL — bench/quality/ood/eval-models.py's
codevec backend (embed() of the server that libpq's PG* variables name)
against its numpy backend, an independent BERT forward pass over the same
model's safetensors: MODEL is a model the server has installed and
ROOT/models/MODEL its folder here. The server runs at codevec.cpu_precision
fp32 for this. Needs numpy, safetensors, tokenizers and psycopg (the
suite's venv, test/trainset/requirements.txt). Prints one line per check:
"ok DESCRIPTION" or "not ok DESCRIPTION: DETAIL"; run.sh counts them.
"""

import gzip
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np

root, tmp, model = sys.argv[1:4]
EVAL = os.path.join(root, 'bench/quality/ood/eval-models.py')
folder = os.path.join(root, 'models', model)


def check(cond, desc, detail=''):
    print(('ok %s' % desc) if cond else ('not ok %s: %s' % (desc, detail)), flush=True)


spec = importlib.util.spec_from_file_location('eval_models', EVAL)
em = importlib.util.module_from_spec(spec)
spec.loader.exec_module(em)

verbs = ['read', 'write', 'parse', 'sort', 'merge', 'split', 'compress', 'hash', 'open', 'close',
         'send', 'receive', 'encode', 'decode', 'lock', 'retry']
nouns = ['config file', 'socket', 'json document', 'user list', 'cache entry', 'log line']
snippets, queries = [], []
for i, v in enumerate(verbs):
    for j, n in enumerate(nouns[:4]):
        sid = 100 + 4 * i + j
        name = '%s_%s' % (v, n.replace(' ', '_'))
        snippets.append([sid, '%s\n%s\ndef %s(x):\n    return %s(x, %r)' % (
            name.replace('_', ' '), name, name, v, n)])
for i, v in enumerate(verbs[:12]):
    queries.append(dict(qid=i + 1, query='how do I %s a %s' % (v, nouns[i % 4]),
                        language='python', split='dev' if i % 2 else 'test',
                        targets=[100 + 4 * i + i % 4], kw=[100 + 4 * i, 100 + 4 * i + i % 4]))
texts = [s[1] for s in snippets] + [q['query'] for q in queries]

# the vectors themselves
try:
    a = em.CodevecEncoder(model, 'fp32')(texts)
    b = em.NumpyEncoder(folder)(texts)
    cos = (a * b).sum(1)
    check(cos.min() >= 0.9999,
          'eval-models.py --backend codevec: embed() at fp32 against the numpy BERT pass of %s, '
          '%d texts: min cosine >= 0.9999' % (model, len(texts)), 'min %.6f' % cos.min())
except SystemExit as e:
    check(False, 'eval-models.py --backend codevec: embed() at fp32 against the numpy BERT pass', str(e))

# the whole run: the same vector ranks from both backends
kit = dict(created='evalcheck', commit='-', groups=[
    dict(benchmark='cosqa', name='cosqa', snippets=snippets, queries=queries)])
with gzip.open(os.path.join(tmp, 'kit.json.gz'), 'wt') as f:
    json.dump(kit, f)
ranks = {}
for backend, what, extra in (('codevec', model, ['--precision', 'fp32']), ('numpy', folder, [])):
    out = os.path.join(tmp, backend + '.json')
    r = subprocess.run([sys.executable, EVAL, os.path.join(tmp, 'kit.json.gz'), what, '--backend', backend,
                        '--out', out] + extra, capture_output=True, text=True)
    ranks[backend] = ([(q['qid'], q['vector']) for g in json.load(open(out))['models'][what]
                       for q in g['queries']] if r.returncode == 0 else r.stderr[-400:])
check(isinstance(ranks['codevec'], list) and ranks['codevec'] == ranks['numpy'] and
      any(x[1] == 1 for x in ranks['codevec']),
      'eval-models.py --backend codevec: every query of a small kit has the vector rank the numpy backend gives',
      str(ranks)[:600])

# a model the server does not have: an error naming it and its SQLSTATE, no traceback
r = subprocess.run([sys.executable, EVAL, os.path.join(tmp, 'kit.json.gz'), 'no-such-model-here',
                    '--backend', 'codevec', '--out', os.path.join(tmp, 'none.json')],
                   capture_output=True, text=True)
check(r.returncode != 0 and 'no-such-model-here' in r.stderr and '58P01' in r.stderr
      and 'Traceback' not in r.stderr,
      'eval-models.py --backend codevec: a model the server does not have exits with its SQLSTATE (58P01)',
      r.stderr[-400:])
