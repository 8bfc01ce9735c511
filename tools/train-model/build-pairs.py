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
  build-pairs.py staqc --staqc DIR --out FILE   StaQC's training split
        (Yao et al., WWW 2018: Stack Overflow titles with the code that
        answers them) as pairs, where a copy of its repository is at hand

Query styles (issue 27; every pair has a "style", train.py picks a mixture):
  doc      the doc's cleaned first sentence (as the benchmark's queries);
           such a pair also carries "query_idfree" when the rule below
           changes it: the same sentence with every word dropped that is a
           part of the function's name or of an identifier of its signature
           (split at case changes and underscores, plural -s/-es ignored),
           kept when 3+ words and a content word remain
  comment  (--comments) a comment block inside a function body, right above
           a line of code, as the query: its first sentence, 4..25 words of
           prose; the text is the function's embed_text without that block.
           One such pair per function at most (the first that qualifies)
  staqc    (the staqc command) a title and its code

Environment: CODEVEC_TRAIN_CACHE (downloads and unpacked packages, default
/tmp/codevec-train), CODEVEC_QUALITY_CACHE (the benchmark corpus that is
excluded; built by bench/quality/build-set.py), CODEVEC_LOAD (the loader).
"""

import argparse
import collections
import gzip
import hashlib
import importlib.util
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time

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
    want = {r['repo'] for r in bs.read_manifest(os.path.join(ROOT, 'bench', 'quality',
                                                            'manifest.tsv'))}
    missing = sorted(want - set(os.listdir(corpus)))
    if missing:
        sys.exit('%s lacks %d repos of bench/quality/manifest.tsv (%s ...): rebuild it '
                 '(python3 bench/quality/build-set.py); its code is what the training set must '
                 'not contain' % (corpus, len(missing), ', '.join(missing[:3])))
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


def tree_pairs(lang, repo, tree, bench_codes, bench_queries, seen_code, dropped, comments=False):
    """The pairs of one source tree (a package's selected files): documented
    functions, methods and constructors of language lang with 3+ lines,
    not tests, whose code is neither in the benchmark nor already kept
    (seen_code, updated), whose query (bs.make_query) is no benchmark query;
    text = the snippet's embed_text in the loader's --strip-docs parse.
    dropped (a Counter) counts why candidates were left out.  comments:
    also the style 'comment' pairs (comment_pairs)."""
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
        p = dict(language=lang, repo=repo, query=q, text=st['embed_text'], style='doc',
                 fn=fn_id(repo, s))
        r = idfree(q, s)
        if r:
            p['query_idfree'] = r
        out.append(p)
    if comments:
        out.extend(comment_pairs(lang, repo, stripped.values(), bench_codes, bench_queries,
                                 dropped))
    return out


def fn_id(repo, s):
    """A short id of the function a pair comes from (its doc and its
    comment pairs share it): train.py never mines one as the other's
    negative."""
    key = '%s\0%s\0%s\0%d' % (repo, s['path'], s['qualified_name'], s['start_line'])
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def ident_parts(s):
    """The lower-case parts of the snippet's name and of every identifier of
    its signature (what a query written without the code's words avoids)."""
    parts = set(bs.split_ident(s['qualified_name']))
    for w in re.findall(r'[A-Za-z_][A-Za-z0-9_]*', s.get('signature') or ''):
        parts.update(bs.split_ident(w))
    return parts


def _stem(w):
    for suf in ('ies', 'es', 's'):
        if len(w) > len(suf) + 2 and w.endswith(suf):
            return w[:-len(suf)] + ('y' if suf == 'ies' else '')
    return w


def idfree(q, s):
    """The identifier-free rewrite of query q for snippet s (see the module
    doc), or None when it is q itself or too little is left."""
    parts = ident_parts(s)
    stems = {_stem(p) for p in parts}
    keep = []
    for w in q.split():
        core = w.strip('`\'",.;:()[]{}<>!?')
        low = core.lower()
        if core and (low in parts or _stem(low) in stems or '_' in core or
                     re.search(r'[a-z][A-Z]|\(\)|::|\.\w', core)):
            continue
        keep.append(w)
    if len(keep) == len(q.split()) or len(keep) < 3:
        return None
    content = [w for w in keep if re.sub(r'\W', '', w.lower()) not in bs.STOP]
    if not content:
        return None
    r = ' '.join(keep).strip(' ,;:')
    return r[0].upper() + r[1:] if r else None


LINE_COMMENT = {'python': re.compile(r'^\s*#+\s?(.*)$')}
DEFAULT_LINE_COMMENT = re.compile(r'^\s*//+!?\s?(.*)$')
BLOCK_COMMENT = re.compile(r'^\s*/\*+\s?(.*?)\s*\*+/\s*$')
CODEY = re.compile(r'[;{}=<>\[\]|&^]|\w\(|\)\s*$|^\s*(if|for|while|return|else|def|var|let|'
                   r'const|int|char|void|static|import|from)\b|\.\w+\(|->|::|\+\+|--')


def inner_comments(code, lang):
    """Comment blocks inside code (after its first line) right above a line
    of code: [(text, [raw lines])]."""
    lc = LINE_COMMENT.get(lang, DEFAULT_LINE_COMMENT)
    lines = code.split('\n')
    out = []
    i = 1
    while i < len(lines):
        block, raw = [], []
        while i < len(lines):
            m = lc.match(lines[i]) or (lang != 'python' and BLOCK_COMMENT.match(lines[i]))
            if not m:
                break
            block.append(m.group(1).strip())
            raw.append(lines[i])
            i += 1
        if block and i < len(lines) and lines[i].strip() and lines[i].strip() not in ('}', ')'):
            out.append((' '.join(b for b in block if b), raw))
        if not block:
            i += 1
    return out


def comment_query(text, lang):
    """A comment's first sentence as a query, or None (code, a tag, a note)."""
    if not text or bs.BAD.search(text) or CODEY.search(text):
        return None
    q = bs.first_sentence(text, lang)
    if not q or bs.BAD.search(q) or CODEY.search(q):
        return None
    words = q.split()
    if len(words) < 4 or len(words) > 25:
        return None
    if sum(c.isalpha() or c == ' ' for c in q) < 0.9 * len(q):
        return None
    return q[0].upper() + q[1:]


def without_lines(text, raw):
    """text (an embed_text) less its lines that are one of the comment lines
    raw (compared by their letters and digits: embed_text may re-case)."""
    key = lambda l: re.sub(r'[^a-z0-9]', '', l.lower())
    drop = {key(l) for l in raw}
    return '\n'.join(l for l in text.split('\n') if not (key(l) in drop and key(l)))


def comment_pairs(lang, repo, stripped, bench_codes, bench_queries, dropped):
    """Style 'comment': one pair per function whose body has a comment block
    above code that makes a query (comment_query); the text is the
    function's --strip-docs embed_text without that block."""
    out = []
    for s in sorted(stripped, key=lambda s: (s['path'], s['start_line'])):
        if s['language'] != lang or s['kind'] not in ('function', 'method', 'constructor'):
            continue
        if s['end_line'] - s['start_line'] + 1 < 3 or 'test' in s['qualified_name'].lower():
            continue
        if not s.get('embed_text') or bs.code_key(s['code']) in bench_codes:
            continue
        for text, raw in inner_comments(s['code'], lang):
            q = comment_query(text, lang)
            if not q:
                continue
            if norm_query(q) in bench_queries:
                dropped['comment query in the benchmark'] += 1
                continue
            t = without_lines(s['embed_text'], raw)
            if t == s['embed_text']:
                continue          # the block is past embed_text's cut: nothing to remove
            out.append(dict(language=lang, repo=repo, query=q, text=t, style='comment',
                            fn=fn_id(repo, s)))
            break
    return out


def unambiguous(cands, dropped):
    """Drop every pair whose query (normalised) is the query of another pair
    of the same language: a sentence that documents several functions names
    none of them."""
    k = lambda p: (p['language'], p.get('style', 'doc'), norm_query(p['query']))
    n = collections.Counter(k(p) for p in cands)
    out = [p for p in cands if n[k(p)] == 1]
    for p in cands:
        if n[k(p)] != 1:
            dropped['ambiguous query' + ('' if p.get('style', 'doc') == 'doc'
                                         else ' (%s)' % p['style'])] += 1
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
                                   dropped, comments=args.comments), dropped)
    write_pairs(args.out, pairs)
    log('pairs: %d; dropped: %s' % (len(pairs), dict(sorted(dropped.items()))))


def cmd_pairs(args):
    t0 = time.time()
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
        found = tree_pairs(row['lang'], row['repo'], stage, bench_codes, bench_queries,
                           seen_code, dropped, comments=args.comments)
        subprocess.run(['rm', '-rf', stage], check=True)
        mine = []
        # the cap is per style: comment pairs never crowd out doc pairs
        for style in ('doc', 'comment'):
            these = [p for p in found if p['style'] == style]
            rng = random.Random('%d/%s' % (args.seed, row['repo']) if style == 'doc'
                                else '%d/%s/%s' % (args.seed, row['repo'], style))
            rng.shuffle(these)
            if len(these) > args.cap_per_package:
                dropped['over the per-package cap' + ('' if style == 'doc' else ' (%s)' % style)] \
                    += len(these) - args.cap_per_package
                these = these[:args.cap_per_package]
            mine.extend(these)
        cands.extend(mine)
        per_pkg[row['repo']] = len(mine)
        log('%-45s %-10s files %5d pairs %5d' % (row['repo'], row['lang'], len(files), len(mine)))
    out = write_pairs(args.out, unambiguous(cands, dropped))
    by_lang = collections.Counter(p['language'] for p in out if p['style'] == 'doc')
    by_style = collections.Counter('%s/%s' % (p['language'], p['style']) for p in out)
    idf = collections.Counter(p['language'] for p in out if 'query_idfree' in p)
    log('pairs: %d (doc: %s) -> %s' % (len(out), ', '.join('%s %d' % kv for kv in
                                                           sorted(by_lang.items())), args.out))
    log('by style: %s' % dict(sorted(by_style.items())))
    log('dropped: %s' % dict(dropped))
    log('seconds: %.0f' % (time.time() - t0))
    if args.stats:
        with open(args.stats, 'w') as f:
            json.dump(dict(pairs=len(out), languages=dict(sorted(by_lang.items())),
                           by_style=dict(sorted(by_style.items())),
                           doc_with_idfree_rewrite=dict(sorted(idf.items())),
                           dropped=dict(sorted(dropped.items())), packages=per_pkg,
                           cap_per_package=args.cap_per_package, seed=args.seed,
                           comments=args.comments, seconds=round(time.time() - t0)),
                      f, indent=1)


STAQC_COMMIT = '81b74afb40b2c57b34a92ad94a67ade0c305d101'
STAQC_DIR = 'data/data_hnn/python/'
STAQC_SRC = 'annotation_tool/data/code_solution_labeled_data/source/'
# git blob ids at STAQC_COMMIT (as bench/quality/ood/fetch.py checks them)
STAQC_BLOBS = {
    STAQC_SRC + 'python_how_to_do_it_by_classifier_multiple_iid_to_code.pickle':
        '9ca7a69f2fad78db961ca9e540edc540eba14652',
    STAQC_SRC + 'python_how_to_do_it_by_classifier_multiple_qid_to_title.pickle':
        '80df0165452c305e0f10c717a73c2326a33f5909',
}


def staqc_file(root, rel, commit):
    """A file of the StaQC repository: from a work tree, or `git show
    COMMIT:PATH` of a bare / any git directory (the pinned commit)."""
    p = os.path.join(root, rel)
    if os.path.isfile(p):
        return open(p, 'rb').read()
    r = subprocess.run(['git', '--git-dir', root, 'show', '%s:%s' % (commit, rel)],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    if r.returncode:
        r = subprocess.run(['git', '-C', root, 'show', '%s:%s' % (commit, rel)],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    if r.returncode:
        sys.exit('staqc: %s not found under %s (at %s)' % (rel, root, commit))
    return r.stdout


def cmd_staqc(args):
    """StaQC's training split as style 'staqc' pairs: the title of each
    question of data_hnn/python/train/iids.pickle with each of its code
    answers (at most --staqc-max-bytes of it, as the loader's embed_text
    cap), questions of the valid and test splits (what the out-of-
    distribution benchmark uses) left out even where an answer is in
    train; the same benchmark-query filter as the other pairs."""
    import pickle
    data = {}
    for rel, blob in sorted(STAQC_BLOBS.items()):
        b = staqc_file(args.staqc, rel, args.staqc_commit)
        got = hashlib.sha1(b'blob %d\0' % len(b) + b).hexdigest()
        if blob and got != blob and not args.staqc_no_check:
            sys.exit('staqc: %s has git blob id %s, expected %s' % (rel, got, blob))
        data[rel] = pickle.loads(b, encoding='latin1')
    code, title = (data[r] for r in sorted(STAQC_BLOBS))
    split = {part: pickle.loads(staqc_file(args.staqc, STAQC_DIR + part + '/iids.pickle',
                                           args.staqc_commit), encoding='latin1')
             for part in ('train', 'valid', 'test')}
    held = {q for part in ('valid', 'test') for q, _ in split[part]}
    queries = {norm_query(q['query']) for q in read_queries()}
    dropped = collections.Counter()
    out = []
    for qid, ci in sorted(split['train']):
        if qid in held:
            dropped['question in the valid/test split'] += 1
            continue
        if (qid, ci) not in code or qid not in title:
            dropped['no text'] += 1
            continue
        q = ' '.join(str(title[qid]).split())
        c = str(code[(qid, ci)]).strip()
        if len(q.split()) < 3 or len(c.split('\n')) < 2:
            dropped['short title or code'] += 1
            continue
        if norm_query(q) in queries:
            dropped['query in the benchmark'] += 1
            continue
        c = c.encode()[:args.staqc_max_bytes].decode(errors='ignore')
        out.append(dict(language='python', repo='staqc', query=q, text=c, style='staqc'))
    out = write_pairs(args.out, unambiguous(out, dropped))
    log('staqc pairs: %d -> %s; dropped: %s' % (len(out), args.out, dict(sorted(dropped.items()))))


def cmd_merge(args):
    """Merge pairs files (the package pairs, StaQC's) into one, sorted."""
    pairs = []
    for path in args.inputs:
        with gzip.open(path, 'rt', encoding='utf-8') as f:
            pairs.extend(json.loads(l) for l in f)
    out = write_pairs(args.out, pairs)
    log('merged %d pairs -> %s' % (len(out), args.out))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('command', choices=['pin', 'pairs', 'tree', 'staqc', 'merge'])
    ap.add_argument('inputs', nargs='*', help='merge: the pairs files to merge')
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
    ap.add_argument('--comments', action='store_true',
                    help="pairs, tree: also style 'comment' pairs")
    ap.add_argument('--staqc', help='staqc: a copy of the StaQC repository (work tree or git dir)')
    ap.add_argument('--staqc-commit', default=STAQC_COMMIT)
    ap.add_argument('--staqc-max-bytes', type=int, default=500)
    ap.add_argument('--staqc-no-check', action='store_true',
                    help='staqc: skip the blob id check (a test fixture)')
    args = ap.parse_args()
    os.makedirs(args.cache, exist_ok=True)
    {'pin': cmd_pin, 'pairs': cmd_pairs, 'tree': cmd_tree, 'staqc': cmd_staqc,
     'merge': cmd_merge}[args.command](args)


if __name__ == '__main__':
    main()
