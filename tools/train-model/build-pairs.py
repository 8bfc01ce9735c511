#!/usr/bin/env python3
"""tools/train-model/build-pairs.py — (query, code) training pairs for the
code-search encoder that `make model-code` fine-tunes.

The pairs are made the way the retrieval benchmark makes its queries
(bench/quality/build-set.py, the CodeSearchNet recipe, Husain et al. 2019,
arXiv:1909.09436), from *other* code: the Debian packages of packages.tsv,
none of which is in the benchmark's manifest.  For every documented
function, method or constructor the query is the cleaned first sentence of
its doc (build-set.py's make_query) and the positive is the snippet's
embed_text exactly as `codevec-load --strip-docs` writes it with the
loader's defaults (what codevec embeds for that function, doc removed).

Nothing of the evaluation set reaches the training set: a pair is dropped
when its code (docs blanked, whitespace-normalised) is the code of any snippet of the
benchmark corpus, or its query (lower-cased, punctuation removed) is any
benchmark query.  So the benchmark's numbers for the tuned model are on
functions and sentences it never saw.

  build-pairs.py pin [--in packages.tsv]     download every package (Debian's
        current version when the row says '-'), write its version and
        sha256 back into the file
  build-pairs.py pairs [--out FILE]          fetch (checked against the
        sha256), parse with codevec-load --jsonl, write FILE (JSON lines,
        gzip: language, repo, query, text), sorted, deduplicated; prints a
        per-language count
  build-pairs.py tree --lang L --root DIR --out FILE [--exclude-corpus DIR]
        [--exclude-queries FILE]                the pairs of one local tree,
        with the same rules (what test/trainset checks)

Environment: CODEVEC_TRAIN_CACHE (downloads and unpacked packages, default
/tmp/codevec-train), CODEVEC_QUALITY_CACHE (the benchmark corpus that is
excluded; built by bench/quality/build-set.py), CODEVEC_LOAD (the loader).
"""

import argparse
import collections
import gzip
import importlib.util
import json
import os
import random
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
_spec = importlib.util.spec_from_file_location(
    'build_set', os.path.join(ROOT, 'bench', 'quality', 'build-set.py'))
bs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bs)

CACHE = os.environ.get('CODEVEC_TRAIN_CACHE', '/tmp/codevec-train')
# at most this many pairs from one package, so that a few huge packages
# (SDKs with generated, repetitive docs) do not make up the set
CAP_PER_PACKAGE = 3000
SEED = 20261121


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def norm_query(q):
    return re.sub(r'\W+', ' ', q.lower()).strip()


def cmd_pin(args):
    lines = open(args.manifest).read().splitlines()
    out = []
    for line in lines:
        if line.startswith('#') or not line.strip():
            out.append(line)
            continue
        f = line.split('\t')
        if f[4] == '-':
            p = subprocess.run(['apt-cache', 'policy', f[3]], stdout=subprocess.PIPE,
                               text=True, check=True).stdout
            m = re.search(r'Candidate:\s*(\S+)', p)
            if not m or m.group(1) == '(none)':
                log('no candidate for', f[3])
                continue
            f[4] = m.group(1)
        row = dict(source=f[2], package=f[3], version=f[4], sha256=None)
        try:
            path = bs.fetch(row, args.cache)
        except subprocess.CalledProcessError:
            log('cannot download', f[3], f[4])
            continue
        f[5] = bs.sha256_file(path)
        out.append('\t'.join(f))
        log('%-45s %s' % (f[3], f[4]))
    with open(args.manifest, 'w') as fh:
        fh.write('\n'.join(out) + '\n')


def benchmark_exclusions():
    """Code keys of every snippet of the benchmark corpus, normalised queries."""
    qcache = os.environ.get('CODEVEC_QUALITY_CACHE', '/tmp/codevec-quality')
    corpus = os.path.join(qcache, 'corpus')
    if not os.path.isdir(corpus):
        sys.exit('%s missing: build the benchmark first (python3 bench/quality/build-set.py);'
                 ' its code is what the training set must not contain' % corpus)
    codes = set()
    for repo in sorted(os.listdir(corpus)):
        for s in bs.jsonl(os.path.join(corpus, repo), '--strip-docs'):
            codes.add(bs.code_key(s['code']))
    queries = {norm_query(q['query']) for q in read_queries()}
    log('benchmark: %d code keys, %d queries excluded' % (len(codes), len(queries)))
    return codes, queries


def read_queries():
    path = os.path.join(ROOT, 'bench', 'quality', 'queries.tsv.gz')
    with gzip.open(path, 'rt', encoding='utf-8') as f:
        head = f.readline().rstrip('\n').split('\t')
        return [dict(zip(head, l.rstrip('\n').split('\t'))) for l in f if l.strip()]


def tree_pairs(lang, repo, tree, bench_codes, bench_queries, seen_code, dropped):
    """The pairs of one source tree (a package's selected files): documented
    functions, methods and constructors of language lang with 3+ lines,
    not tests, whose code is neither in the benchmark nor already kept
    (seen_code, updated), whose query (bs.make_query) is no benchmark query;
    text = the snippet's embed_text in the loader's --strip-docs parse.
    dropped (a Counter) counts why candidates were left out."""
    with_docs = bs.jsonl(tree)
    stripped = {(s['path'], s['qualified_name'], s['start_line']): s
                for s in bs.jsonl(tree, '--strip-docs')}
    # code is compared without its doc (the --strip-docs parse blanks it):
    # the same function with another doc is the same code
    out = []
    for s in with_docs:
        if s['language'] != lang or s['kind'] not in ('function', 'method', 'constructor'):
            continue
        if s['end_line'] - s['start_line'] + 1 < 3 or 'test' in s['qualified_name'].lower():
            continue
        st = stripped.get((s['path'], s['qualified_name'], s['start_line']))
        if st is None or not st.get('embed_text'):
            dropped['not in the --strip-docs parse'] += 1
            continue
        key = bs.code_key(st['code'])
        if key in bench_codes:
            dropped['code in the benchmark'] += 1
            continue
        if key in seen_code:
            dropped['duplicate code'] += 1
            continue
        q = bs.make_query(s)
        if not q:
            continue
        if norm_query(q) in bench_queries:
            dropped['query in the benchmark'] += 1
            continue
        seen_code.add(key)
        out.append(dict(language=lang, repo=repo, query=q, text=st['embed_text']))
    return out


def unambiguous(cands, dropped):
    """Drop every pair whose query (normalised) is the query of another pair
    of the same language: a sentence that documents several functions names
    none of them."""
    n = collections.Counter((p['language'], norm_query(p['query'])) for p in cands)
    out = [p for p in cands if n[(p['language'], norm_query(p['query']))] == 1]
    dropped['ambiguous query'] += len(cands) - len(out)
    return out


def write_pairs(path, pairs):
    pairs = sorted(pairs, key=lambda p: (p['language'], p['repo'], p['query'], p['text']))
    # no file name or time in the gzip header: the same pairs, the same bytes
    with open(path, 'wb') as raw, gzip.GzipFile(filename='', fileobj=raw, mode='wb', mtime=0) as f:
        for p in pairs:
            f.write((json.dumps(p, ensure_ascii=False, sort_keys=True) + '\n').encode())
    return pairs


def cmd_tree(args):
    """Pairs of one local tree (no download): what the tests check."""
    codes = set()
    if args.exclude_corpus:
        for s in bs.jsonl(args.exclude_corpus, '--strip-docs'):
            codes.add(bs.code_key(s['code']))
    queries = set()
    if args.exclude_queries:
        queries = {norm_query(l.rstrip('\n')) for l in open(args.exclude_queries) if l.strip()}
    dropped = collections.Counter()
    pairs = unambiguous(tree_pairs(args.lang, args.repo, args.root, codes, queries, set(),
                                   dropped), dropped)
    write_pairs(args.out, pairs)
    log('pairs: %d; dropped: %s' % (len(pairs), dict(sorted(dropped.items()))))


def cmd_pairs(args):
    rows = bs.read_manifest(args.manifest)
    bench_codes, bench_queries = benchmark_exclusions()
    seen_code = set()
    per_pkg = collections.OrderedDict()
    cands = []
    dropped = collections.Counter()
    for row in rows:
        root = bs.unpack(row, bs.fetch(row, args.cache), args.cache)
        files = bs.select_files(row, root)
        if not files:
            log('%-45s %-10s no source files under %s' % (row['repo'], row['lang'], row['root']))
            per_pkg[row['repo']] = 0
            continue
        stage = os.path.join(args.cache, 'stage', row['repo'])
        subprocess.run(['rm', '-rf', stage], check=True)
        for rel in files:
            os.makedirs(os.path.join(stage, os.path.dirname(rel)), exist_ok=True)
            shutil.copyfile(os.path.join(root, rel), os.path.join(stage, rel))
        mine = tree_pairs(row['lang'], row['repo'], stage, bench_codes, bench_queries,
                          seen_code, dropped)
        subprocess.run(['rm', '-rf', stage], check=True)
        rng = random.Random('%d/%s' % (args.seed, row['repo']))
        rng.shuffle(mine)
        if len(mine) > args.cap_per_package:
            dropped['over the per-package cap'] += len(mine) - args.cap_per_package
            mine = mine[:args.cap_per_package]
        cands.extend(mine)
        per_pkg[row['repo']] = len(mine)
        log('%-45s %-10s files %5d pairs %5d' % (row['repo'], row['lang'], len(files), len(mine)))
    out = write_pairs(args.out, unambiguous(cands, dropped))
    by_lang = collections.Counter(p['language'] for p in out)
    log('pairs: %d (%s) -> %s' % (len(out), ', '.join('%s %d' % kv for kv in sorted(by_lang.items())),
                                   args.out))
    log('dropped: %s' % dict(dropped))
    if args.stats:
        with open(args.stats, 'w') as f:
            json.dump(dict(pairs=len(out), languages=dict(sorted(by_lang.items())),
                           dropped=dict(sorted(dropped.items())), packages=per_pkg,
                           cap_per_package=args.cap_per_package, seed=args.seed), f, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('command', choices=['pin', 'pairs', 'tree'])
    ap.add_argument('--manifest', default=os.path.join(HERE, 'packages.tsv'))
    ap.add_argument('--cache', default=CACHE)
    ap.add_argument('--out', default=os.path.join(CACHE, 'pairs.jsonl.gz'))
    ap.add_argument('--stats', default=None, help='write counts as JSON here')
    ap.add_argument('--cap-per-package', type=int, default=CAP_PER_PACKAGE)
    ap.add_argument('--seed', type=int, default=SEED)
    ap.add_argument('--lang', help='tree: the language of the tree')
    ap.add_argument('--repo', default='tree', help='tree: the repo name written in the pairs')
    ap.add_argument('--root', help='tree: the source tree')
    ap.add_argument('--exclude-corpus', help='tree: a tree whose code is excluded')
    ap.add_argument('--exclude-queries', help='tree: a file of queries (one a line) excluded')
    args = ap.parse_args()
    os.makedirs(args.cache, exist_ok=True)
    {'pin': cmd_pin, 'pairs': cmd_pairs, 'tree': cmd_tree}[args.command](args)


if __name__ == '__main__':
    main()
