#!/usr/bin/env python3
"""test/trainset/mixcheck.py ROOT TMP — checks of tools/train-model/interpolate.py
(WiSE-FT weight mixing) and of bench/quality/ood/choose.py's fusion rule, on
small models and results written here. Needs numpy and safetensors (the
suite's venv, test/trainset/requirements.txt). Prints one line per check:
"ok DESCRIPTION" or "not ok DESCRIPTION: DETAIL"; run.sh counts them.
"""

import gzip
import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
from safetensors.numpy import load_file, save_file

root, tmp = sys.argv[1], sys.argv[2]
INTERP = os.path.join(root, 'tools/train-model/interpolate.py')
CHOOSE = os.path.join(root, 'bench/quality/ood/choose.py')


def check(cond, desc, detail=''):
    print(('ok %s' % desc) if cond else ('not ok %s: %s' % (desc, detail)), flush=True)


def folder(path, tensors, extra=True):
    os.makedirs(os.path.join(path, '1_Pooling'), exist_ok=True)
    save_file(tensors, os.path.join(path, 'model.safetensors'))
    if extra:
        for f, text in (('config.json', '{"hidden_size": 3}\n'), ('vocab.txt', '[PAD]\n[UNK]\n'),
                        ('modules.json', '[]\n'), ('1_Pooling/config.json', '{"pooling_mode_mean_tokens": true}\n')):
            with open(os.path.join(path, f), 'w') as fo:
                fo.write(text)


def run(*args):
    return subprocess.run([sys.executable, INTERP] + [str(a) for a in args],
                          capture_output=True, text=True)


rng = np.random.default_rng(7)
base_w = rng.standard_normal((4, 3)).astype(np.float32)
tuned_w = (base_w + 0.1 * rng.standard_normal((4, 3))).astype(np.float16)
pos = np.arange(6, dtype=np.int64).reshape(1, 6)
folder(tmp + '/base', {'w': base_w, 'b': np.ones(3, np.float32), 'position_ids': pos,
                       'only.in.base': np.zeros(2, np.float32)}, extra=False)
folder(tmp + '/tuned', {'w': tuned_w, 'b': np.full(3, 3.0, np.float16), 'position_ids': pos + 1})

# 1. the mixture itself
r = run(tmp + '/base', tmp + '/tuned', 0.25, tmp + '/mix')
check(r.returncode == 0, 'interpolate.py alpha 0.25 runs', r.stderr.strip())
if r.returncode == 0:
    m = load_file(tmp + '/mix/model.safetensors')
    want = (0.75 * base_w + 0.25 * tuned_w.astype(np.float32)).astype(np.float16)
    check(m['w'].dtype == np.float16 and np.array_equal(m['w'], want),
          'alpha 0.25: every weight is float16 of 0.75 * base + 0.25 * fine-tuned', str(m['w']))
    check(np.array_equal(m['b'], np.full(3, 1.5, np.float16)), 'alpha 0.25: b = 0.75 * 1 + 0.25 * 3 = 1.5', str(m['b']))
    check(m['position_ids'].dtype == np.int64 and np.array_equal(m['position_ids'], pos + 1),
          'integer tensors are the fine-tuned model\'s, unchanged', str(m['position_ids']))
    check(sorted(m) == ['b', 'position_ids', 'w'], 'tensors only in the base are left out', str(sorted(m)))
    same = all(open(os.path.join(tmp, 'tuned', f)).read() == open(os.path.join(tmp, 'mix', f)).read()
               for f in ('config.json', 'vocab.txt', 'modules.json', '1_Pooling/config.json'))
    check(same, 'config, vocabulary, modules and pooling are copied from the fine-tuned folder')
    info = json.load(open(tmp + '/mix/interpolation.json'))
    sha = hashlib.sha256(open(tmp + '/mix/model.safetensors', 'rb').read()).hexdigest()
    check(info['alpha'] == 0.25 and info['model_safetensors_sha256'] == sha
          and info['finetuned']['model_safetensors_sha256']
          == hashlib.sha256(open(tmp + '/tuned/model.safetensors', 'rb').read()).hexdigest(),
          'interpolation.json records alpha and the sha256 of the inputs and of the output', str(info))

# 2. the ends
r0, r1 = run(tmp + '/base', tmp + '/tuned', 0, tmp + '/a0'), run(tmp + '/base', tmp + '/tuned', 1, tmp + '/a1')
if r0.returncode == 0 and r1.returncode == 0:
    a0, a1 = load_file(tmp + '/a0/model.safetensors'), load_file(tmp + '/a1/model.safetensors')
    check(np.array_equal(a0['w'], base_w.astype(np.float16)), 'alpha 0 is the base model (in float16)')
    check(np.array_equal(a1['w'], tuned_w) and np.array_equal(a1['b'], np.full(3, 3.0, np.float16)),
          'alpha 1 is the fine-tuned model, bit for bit')
else:
    check(False, 'alpha 0 and 1 run', r0.stderr + r1.stderr)

# 3. bad input: a clear error, nothing written
folder(tmp + '/other', {'w': tuned_w, 'missing.in.base': np.zeros(2, np.float16)})
r = run(tmp + '/base', tmp + '/other', 0.5, tmp + '/bad1')
check(r.returncode != 0 and 'missing.in.base' in r.stderr and not os.path.exists(tmp + '/bad1'),
      'a fine-tuned tensor the base lacks: error naming it, no folder written', r.stderr.strip())
folder(tmp + '/wide', {'w': np.zeros((4, 4), np.float16), 'b': np.zeros(3, np.float16)})
r = run(tmp + '/base', tmp + '/wide', 0.5, tmp + '/bad2')
check(r.returncode != 0 and 'tensor w: base shape (4, 3), fine-tuned shape (4, 4)' in r.stderr,
      'a shape mismatch: error naming the tensor and both shapes', r.stderr.strip())
for a in ('1.5', '-0.1', 'x'):
    r = run(tmp + '/base', tmp + '/tuned', a, tmp + '/bad3')
    check(r.returncode != 0 and 'ALPHA must' in r.stderr, 'alpha %s is refused' % a, r.stderr.strip())
r = run(tmp + '/base', tmp + '/tuned', 'nan', tmp + '/bad5')
check(r.returncode != 0 and 'finite' in r.stderr, 'alpha nan is refused', r.stderr.strip())

# 4. --extrapolate: the fine-tuned model back from a 0.7 mixture and the base
# (what a run does to get wq5 from the shipped model), within the rounding
# interpolate.py's docstring bounds; a weight out of float16's range stops it
big = {'w': (base_w + 0.1 * rng.standard_normal((4, 3))).astype(np.float16) * 100,
       'b': np.full(3, 3.0, np.float16), 'position_ids': pos + 1}
folder(tmp + '/tuned2', big)
b2 = dict(load_file(tmp + '/base/model.safetensors'))
b2['w'] = (b2['w'] * 50).astype(np.float32)
folder(tmp + '/base2', b2, extra=False)
r = run(tmp + '/base2', tmp + '/tuned2', 0.7, tmp + '/mix07')
r2 = run('--extrapolate', tmp + '/base2', tmp + '/mix07', 1 / 0.7, tmp + '/back') if r.returncode == 0 else r
check(r2.returncode == 0, '--extrapolate with alpha 1/0.7 runs', r2.stderr.strip())
if r2.returncode == 0:
    back16 = load_file(tmp + '/back/model.safetensors')['w']
    mix16 = load_file(tmp + '/mix07/model.safetensors')['w']
    back, want = back16.astype(np.float64), big['w'].astype(np.float64)
    # the docstring's bound: half an ulp of the mixture's weight over 0.7, plus half an ulp of the output's
    bound = (np.spacing(np.abs(mix16)).astype(np.float64) / 2 / 0.7
             + np.spacing(np.abs(back16)).astype(np.float64) / 2 + 1e-6 * np.abs(want))
    over = np.abs(back - want) - bound
    check(over.max() <= 0,
          'the 0.7 mixture extrapolated by 1/0.7 gives the fine-tuned weights back within the '
          'docstring\'s rounding bound (largest error %.3g, %.0f%% of its bound, over %d weights)'
          % (np.abs(back - want).max(), 100 * (np.abs(back - want) / bound).max(), over.size), str(over))
    info = json.load(open(tmp + '/back/interpolation.json'))
    check(info['method'].endswith(', extrapolated') and abs(info['alpha'] - 1 / 0.7) < 1e-12,
          'interpolation.json says the mixture was extrapolated, and by how much', str(info))
folder(tmp + '/huge', {'w': np.full((4, 3), 60000, np.float16), 'b': np.zeros(3, np.float16)})
r = run('--extrapolate', tmp + '/base', tmp + '/huge', 2, tmp + '/bad6')
check(r.returncode != 0 and 'tensor w leaves float16' in r.stderr and not os.path.exists(tmp + '/bad6'),
      '--extrapolate: a weight past float16\'s range is an error naming the tensor, no folder written',
      r.stderr.strip())
r = run(tmp + '/base', tmp + '/tuned', 1 / 0.7, tmp + '/bad7')
check(r.returncode != 0 and 'with --extrapolate' in r.stderr, 'alpha 1/0.7 without --extrapolate is refused',
      r.stderr.strip())
r = run(tmp + '/base', tmp + '/nothere', 0.5, tmp + '/bad4')
check(r.returncode != 0 and 'nothere/model.safetensors: no such file' in r.stderr,
      'a folder without weights: error naming the file', r.stderr.strip())


# 4. choose.py's fusion rule on made-up results: cells hand/c, hand/go, cosqa/python,
# 60 dev and 60 test queries each; the model m beats the baseline in vector mode
def results(fusion):
    """fusion: {point: function(benchmark, i) -> rank} for model m."""
    res = {'baseline': 'base', 'models': {}}
    for model in ('base', 'm'):
        groups = []
        for bench, lang in (('hand', 'c'), ('hand', 'go'), ('cosqa', 'python')):
            qs = []
            for split in ('dev', 'test'):
                for i in range(60):
                    vec = (1 + i % 5) if model == 'm' else (2 + i % 5)
                    hyb = {p: (f(bench, i) if model == 'm' else vec) for p, f in fusion.items()}
                    qs.append(dict(qid='%s%d' % (split, i), split=split, language=lang,
                                   vector=vec, keyword=3, hybrid=hyb))
            groups.append(dict(benchmark=bench, name=bench + '-' + lang, queries=qs))
        res['models'][model] = groups
    return res


def choose(res, tag, *options):
    p = '%s/res-%s.json' % (tmp, tag)
    json.dump(res, open(p, 'w'))
    r = subprocess.run([sys.executable, CHOOSE, p, '--json', p + '.choice', '--current', '5/0.35', *options],
                       capture_output=True, text=True)
    return (json.load(open(p + '.choice')) if r.returncode == 0 else {}), r


vec = lambda b, i: 1 + i % 5
better = lambda b, i: 1 if i % 5 < 3 else 1 + i % 5           # hybrid above vector everywhere
hand_only = lambda b, i: 1 if b == 'hand' else 5 + i % 5        # best macro, below vector on cosqa
noise = lambda b, i: 1 if i == 4 else better(b, i)             # better by one query in 60
c, r = choose(results({'5/0.35': better, '10/0.5': hand_only, '2/0.5': noise}), 'a')
check(c.get('model') == 'm', 'choose.py: the model that wins on the dev cells is chosen', r.stdout[-400:] + r.stderr)
check((c.get('rrf_k'), c.get('keyword_weight')) == (5.0, 0.35),
      'choose.py: a fusion point below vector on one benchmark (cosqa) is not chosen, nor one '
      'better by noise only: the defaults stay', str(c) + r.stderr)
check('cosqa' in r.stdout and '| 10/0.5 |' in r.stdout and 'not above 0, the defaults stay' in r.stdout,
      'choose.py prints the worst benchmark of each point and why the defaults stay', r.stdout[-600:])
clear = lambda b, i: 1                                           # every query answered first
c, r = choose(results({'5/0.35': better, '10/0.5': hand_only, '2/0.5': clear}), 'b')
check((c.get('rrf_k'), c.get('keyword_weight')) == (2.0, 0.5),
      'choose.py: a point that beats the defaults with a CI above 0 on every benchmark becomes the default',
      str(c) + r.stderr)

# the shipped model stays unless a better one beats it with a CI above 0 on the dev cells
def with_model(res, tag, rank):
    """res with a model TAG whose vector rank of query i is rank(i), hybrid as m's"""
    res['models'][tag] = [dict(g, queries=[dict(q, vector=rank(int(re.sub(r'\D', '', q['qid']))))
                                            for q in g['queries']]) for g in res['models']['m']]
    return res


res = with_model(results({'5/0.35': better}), 'm2', lambda i: 1 if i == 4 else 1 + i % 5)
c, r = choose(res, 'c', '--current-model', 'm')
check(c.get('model') == 'm' and 'not above 0, the shipped model stays' in r.stdout,
      'choose.py: a model better by one query in 60 does not replace the shipped one', str(c) + r.stdout[-600:] + r.stderr)
c, r = choose(res, 'd', '--current-model', 'nothere')
check(c.get('model') == 'm2', 'choose.py: without the shipped model among the results, the best dev macro is chosen',
      str(c) + r.stderr)
res = with_model(results({'5/0.35': better}), 'm3', lambda i: 1)
c, r = choose(res, 'e', '--current-model', 'm')
check(c.get('model') == 'm3', 'choose.py: a model that beats the shipped one with a CI above 0 replaces it',
      str(c) + r.stdout[-600:] + r.stderr)

# the fusion defaults in one place each, all the same: code.search's (the
# loader's schema, both definitions), the one choose.py keeps on ties and
# eval-models.py's verify and report column
schema = re.findall(r'rrf_k integer DEFAULT (\d+),[^\n]*\n[^\n]*keyword_weight double precision DEFAULT ([0-9.]+)',
                    open(os.path.join(root, 'loaders/schema.c')).read())
chosen = re.search(r"^CURRENT = '([^']+)'", open(CHOOSE).read(), re.M)
fusion = re.search(r'^DEFAULT_FUSION = \(([^,]+), ([^)]+)\)',
                   open(os.path.join(root, 'bench/quality/ood/eval-models.py')).read(), re.M)
points = {'%s/%s' % p for p in schema} | {chosen and chosen.group(1), fusion and '%s/%s' % fusion.groups()}
check(len(schema) == 2 and len(points) == 1 and None not in points,
      "the fusion defaults agree: code.search's (loaders/schema.c), choose.py's CURRENT, eval-models.py's DEFAULT_FUSION",
      '%s, %s, %s' % (schema, chosen and chosen.group(1), fusion and fusion.groups()))

# 5. adaptive-fusion.py: made-up results where identifier-shaped queries (even i)
# are answered first at 60/0.35 and prose queries (odd i) lose there; 10/0.5
# answers every query first on the hand cells but is below vector on cosqa's
ADAPT = os.path.join(root, 'bench/quality/ood/adaptive-fusion.py')
ident = lambda b, i: 1 if i % 2 == 0 else 9                     # noqa: E731
res = results({'2/0.5': better, '60/0.35': ident, '10/0.5': hand_only})
kit = {'groups': [dict(benchmark=g['benchmark'], snippets=[[1, 'parse_args(argv)'], [2, 'read_settings(path)']], queries=[
    dict(qid=q['qid'], query='parse_args of argv' if int(q['qid'][-1]) % 2 == 0 else 'read the settings from a file')
    for q in g['queries']]) for g in res['models']['m']]}
json.dump(res, open(tmp + '/adapt.json', 'w'))
with gzip.open(tmp + '/adapt-kit.json.gz', 'wt') as f:
    json.dump(kit, f)
r = subprocess.run([sys.executable, ADAPT, tmp + '/adapt.json', tmp + '/adapt-kit.json.gz'], capture_output=True, text=True)
picks = dict(re.findall(r'^\| (\w+) \|.*\| (\d+/[0-9.]+) \(dev', r.stdout.split('## By')[1], re.M))
check(r.returncode == 0 and picks.get('identifier') == '60/0.35' and picks.get('other') == '2/0.5',
      'adaptive-fusion.py: identifier-shaped queries get the point that answers them, the others keep '
      'the defaults (10/0.5 is below vector on cosqa)', str(picks) + r.stdout[-800:] + r.stderr)
gain = re.search(r'^\| hand \| test \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| \+([0-9.]+) \(\+', r.stdout, re.M)
check(gain is not None and float(gain.group(1)) > 0.05,
      'adaptive-fusion.py: the test half shows the adaptive gain over the fixed defaults with a CI above 0',
      r.stdout[-1200:])

# eval-models.py --merge: a model scored on other benchmarks in another run keeps
# the groups of both (a group scored again replaces the earlier one)
EVAL = os.path.join(root, 'bench/quality/ood/eval-models.py')
a = results({'2/0.5': better})
b = {'baseline': 'base', 'models': {m: [dict(g, benchmark='staqc', name='staqc') for g in a['models'][m][2:]]
                                      for m in ('base', 'm')}}
b['models']['m'] += [dict(a['models']['m'][0], queries=[dict(q, vector=1) for q in a['models']['m'][0]['queries']])]
json.dump(a, open(tmp + '/merge-a.json', 'w'))
json.dump(b, open(tmp + '/merge-b.json', 'w'))
r = subprocess.run([sys.executable, EVAL, 'nokit', '--merge', tmp + '/merge-a.json', tmp + '/merge-b.json',
                    '--out', tmp + '/merged.json'], capture_output=True, text=True)
merged = json.load(open(tmp + '/merged.json')) if r.returncode == 0 else {'models': {}}
got = {m: sorted(g['name'] for g in gs) for m, gs in merged['models'].items()}
first = [q['vector'] for g in merged['models'].get('m', []) if g['name'] == 'hand-c' for q in g['queries']]
check(got == {'base': ['cosqa-python', 'hand-c', 'hand-go', 'staqc'], 'm': ['cosqa-python', 'hand-c', 'hand-go', 'staqc']}
      and first and set(first) == {1},
      'eval-models.py --merge: groups of separate runs join per model, a group scored again replaces the earlier one',
      str(got) + r.stderr[-500:])

# eval-models.py's public-4: the four-language subset of the public group, scored
# from the parent's vectors; ranks against a brute-force ranking inside the subset
import importlib.util
spec = importlib.util.spec_from_file_location('eval_models', EVAL)
em = importlib.util.module_from_spec(spec)
spec.loader.exec_module(em)
rng = np.random.default_rng(7)
repos = [('r-go', 'go', 1, 3), ('r-c', 'c', 4, 6), ('r-py', 'python', 7, 9), ('r-java', 'java', 10, 12)]
with open(tmp + '/repos.tsv', 'w') as fo:
    fo.write('# repo\tlanguage\tfirst_id\tlast_id\n')
    fo.writelines('%s\t%s\t%d\t%d\n' % r for r in repos)
stats = {'languages': {'go': {'snippets': 3}, 'javascript': {'snippets': 0},
                       'python': {'snippets': 3}, 'rust': {'snippets': 0}}}
json.dump(stats, open(tmp + '/stats.json', 'w'))
texts = ['snippet %d' % i for i in range(1, 13)] + ['query %d' % i for i in range(8)]
vec = {t: v / np.linalg.norm(v) for t, v in zip(texts, rng.normal(size=(len(texts), 4)).astype(np.float32))}
calls = []


def fake_encoder(ts):
    calls.append(len(ts))
    return np.stack([vec[t] for t in ts])


langs = ['go', 'c', 'python', 'java'] * 2
pub = dict(benchmark='public', name='public', snippets=[[i, 'snippet %d' % i] for i in range(1, 13)],
           queries=[dict(qid=q, query='query %d' % q, language=langs[q], split='dev' if q % 2 else 'test',
                         targets=[1 + 3 * (q % 4) + q % 3], kw=[12, 1 + 3 * (q % 4) + q % 3, 5, 7, 2])
                    for q in range(8)])
sub = em.first_four_group(pub, tmp + '/repos.tsv', tmp + '/stats.json')
cache = {}
em.score_group(pub, fake_encoder, cache)
n_calls = len(calls)
got = em.score_group(sub, fake_encoder, cache) if sub else []
ids = [1, 2, 3, 7, 8, 9]
want = []
for q in pub['queries']:
    if q['language'] not in ('go', 'python'):
        continue
    s = {i: float(vec['snippet %d' % i] @ vec[q['query']]) for i in ids}
    order = sorted(ids, key=lambda i: -s[i])
    want.append((q['qid'], order.index(q['targets'][0]) + 1,
                 [x for x in q['kw'] if x in ids].index(q['targets'][0]) + 1))
check(sub is not None and [s[0] for s in sub['snippets']] == ids and sub['benchmark'] == 'public-4'
      and all(set(q['kw']) <= set(ids) for q in sub['queries'])
      and [(r['qid'], r['vector'], r['keyword']) for r in got] == want
      and calls[n_calls:] == [4],
      "eval-models.py public-4: the four languages' snippets and queries only, keyword lists cut to them, "
      "vector ranks equal a brute-force ranking inside the subset, the parent's vectors reused (only queries embedded)",
      '%s %s %s' % ([(r['qid'], r['vector'], r['keyword']) for r in got], want, calls))
stats['languages']['go']['snippets'] = 4
json.dump(stats, open(tmp + '/stats.json', 'w'))
check(em.first_four_group(pub, tmp + '/repos.tsv', tmp + '/stats.json') is None,
      'eval-models.py public-4: skipped when the id ranges do not match corpus-stats.json (another kit)')

# pair-diff.py: two scorings side by side, against the differences computed here
PAIR = os.path.join(root, 'bench/quality/ood/pair-diff.py')
a = results({'2/0.5': better})
json.dump(a, open(tmp + '/pd.json', 'w'))
r = subprocess.run([sys.executable, PAIR, tmp + '/pd.json:base', tmp + '/pd.json:m', '--modes', 'vector'],
                   capture_output=True, text=True)
ra = [1 / (2 + i % 5) for i in range(60)]
rm = [1 / (1 + i % 5) for i in range(60)]
want = '| hand | dev | 120 | %.3f | %.3f | %+.3f (' % (np.mean(ra), np.mean(rm), np.mean(rm) - np.mean(ra))
check(r.returncode == 0 and want in r.stdout and '| cosqa | test | 60 |' in r.stdout and '0 / 120 |' in r.stdout,
      'pair-diff.py: macro MRR@10 of both sides, their difference and the queries of the same rank per cell',
      want + ' / ' + r.stdout[-600:] + r.stderr[-300:])
b = results({'2/0.5': better})
b['models']['m'][0]['queries'] = b['models']['m'][0]['queries'][1:]
json.dump(b, open(tmp + '/pd2.json', 'w'))
r = subprocess.run([sys.executable, PAIR, tmp + '/pd.json:base', tmp + '/pd2.json:m'], capture_output=True, text=True)
check(r.returncode == 1 and 'not the same queries' in r.stderr,
      'pair-diff.py: scorings of different queries are refused', r.stderr[-300:])
