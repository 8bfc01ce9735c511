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
  build-pairs.py staqc --staqc DIR | --staqc-codexglue DIR --out FILE
        StaQC (Yao et al., WWW 2018: Stack Overflow titles with the code
        that answers them) as style 'so' pairs, its valid/test questions
        left out, from a copy of its repository or of CodeXGLUE's copy of
        its annotated pairs (cmd_staqc)
  build-pairs.py merge A B ... --out FILE [--exclude-ood DIR] [--stats F]
        one pairs file; --exclude-ood leaves out the code and queries of
        the out-of-distribution benchmarks (ood_exclusions)

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
  so       (the staqc command) a Stack Overflow title and its answer's code

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


def ood_modules():
    """bench/quality/ood's fetch.py (the StaQC files, pinned) and
    snippet_tree.py (one file per snippet, the same-code key)."""
    ood = os.path.join(ROOT, 'bench', 'quality', 'ood')
    mods = []
    for name, fn in (('ood_fetch', 'fetch.py'), ('snippet_tree', 'snippet_tree.py')):
        spec = importlib.util.spec_from_file_location(name, os.path.join(ood, fn))
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        mods.append(m)
    return mods


def so_text(text, name):
    """An embed_text of file NAME.py without NAME (the file name is a
    number here, not a word a user would search for): 'so 12 f' -> 'f',
    'so12.f' -> 'f' in its first two lines."""
    lines = text.split('\n')
    words = ' '.join(re.findall(r'[a-z]+|\d+', name.lower()))
    if lines and lines[0].startswith(words + ' '):
        lines[0] = lines[0][len(words) + 1:]
    if len(lines) > 1 and lines[1].startswith(name + '.'):
        lines[1] = lines[1][len(name) + 1:]
    return '\n'.join(lines)


def staqc_items(args, dropped):
    """(name, code, question key, title) of StaQC's mined collection
    (cmd_staqc), the valid and test questions left out."""
    fetch, _ = ood_modules()
    f = fetch.staqc_files(args.staqc, None, args.staqc_unpinned)
    held = {q for part in ('valid', 'test')
            for q, _ in f[fetch.STAQC_HNN + part + '/iids.pickle']}
    cands = collections.OrderedDict()        # question id -> [(index, code)], title
    mcode, mtitle = f[fetch.STAQC_MULTI_CODE], f[fetch.STAQC_MULTI_TITLE]
    for qid, ci in sorted(set(f[fetch.STAQC_MULTI])):
        if (qid, ci) in mcode and qid in mtitle:
            cands.setdefault(qid, (mtitle[qid], []))[1].append((ci, mcode[(qid, ci)]))
        else:
            dropped['no text'] += 1
    scode, stitle = f[fetch.STAQC_SINGLE_CODE], f[fetch.STAQC_SINGLE_TITLE]
    for qid in sorted(scode):
        if qid in cands:
            continue
        if qid in stitle:
            cands[qid] = (stitle[qid], [(0, scode[qid])])
        else:
            dropped['no text'] += 1
    items = []
    for qid, (title, codes) in cands.items():
        if qid in held:
            dropped['question in the valid/test split'] += 1
            continue
        for ci, code in sorted(codes):
            items.append(('so%d_%d' % (qid, ci), str(code), qid, title))
    return items


def staqc_codexglue_items(args, dropped):
    """(name, code, question key, title) of the label-1 pairs of CodeXGLUE's
    copy of StaQC's annotated training split (fetch.py's STAQC_CXG); a
    title that is also a valid or test question is left out."""
    fetch, _ = ood_modules()
    f = fetch.checked(fetch.STAQC_CXG, args.staqc_codexglue, None, args.staqc_unpinned)
    rows = {part: json.loads(f[fetch.CXG + part + '_staqc.json']) for part in ('train', 'dev', 'test')}
    held = {fetch.title_text(r['doc']) for part in ('dev', 'test') for r in rows[part]}
    keys, items = {}, []
    for r in sorted(rows['train'], key=lambda r: r['idx']):
        title = fetch.title_text(r['doc'])
        if r['label'] != 1:
            continue
        if title in held:
            dropped['question in the valid/test split'] += 1
            continue
        qid = keys.setdefault(title, len(keys))
        items.append(('so%d_%d' % (qid, r['idx']), r['code'], qid, title))
    return items


def cmd_staqc(args):
    """StaQC (Yao et al., WWW 2018) as style 'so' pairs. With --staqc: every
    question of the mined collection (final_collection/python_multi_code_iids.txt
    with the multi-code pickles, and the single-code answer pickles) whose
    id is not a question of the authors' valid or test split (the
    benchmark's dev and test, bench/quality/ood/fetch.py). With
    --staqc-codexglue: the annotated training split's label-1 pairs from
    CodeXGLUE's copy (the annotators' own, 1,287 pairs of about 1,000
    questions), a title of the valid or test split left out. Either way its
    title is the query and the first of its code snippets the loader
    stores the text: written as a file and parsed with codevec-load
    --strip-docs (statement-only snippets inside `def snippet():`,
    snippet_tree.py), its embed_text without the file's number.  One pair
    per question; code of one line is not kept; a text already kept (same
    code, snippet_tree.text_key) is not kept again; a title that is a query
    of today's bench/quality is dropped.  CoSQA's and StaQC's dev/test code
    and queries are left out by `merge --exclude-ood`."""
    _, st = ood_modules()
    if bool(args.staqc) == bool(args.staqc_codexglue):
        sys.exit('build-pairs.py staqc: give one of --staqc DIR and --staqc-codexglue DIR')
    dropped = collections.Counter()
    found = staqc_codexglue_items(args, dropped) if args.staqc_codexglue else staqc_items(args, dropped)
    queries = {norm_query(q['query']) for q in read_queries()}
    items = []
    for name, code, qid, title in found:
        code = code.strip('\n')
        if len(code.strip().split('\n')) >= 2:
            items.append((name, code, qid, title))
    root = os.path.join(args.cache, 'staqc-tree')
    subprocess.run(['rm', '-rf', root], check=True)
    parsed = st.write_tree([(n, c) for n, c, _, _ in items], root, bs.LOADER, '--strip-docs')
    out, seen_q, seen_t = [], set(), set()
    for name, code, qid, title in items:
        if qid in seen_q:
            continue
        sn = parsed.get(name)
        if not sn or not sn[0].get('embed_text'):
            dropped['no snippet'] += 1
            continue
        q = ' '.join(str(title).split())
        if len(q.split()) < 3:
            dropped['short title'] += 1
            continue
        if norm_query(q) in queries:
            dropped['query in the benchmark'] += 1
            continue
        text = so_text(sn[0]['embed_text'], name)
        k = st.text_key(text)
        if k in seen_t:
            dropped['duplicate code'] += 1
            continue
        seen_q.add(qid)
        seen_t.add(k)
        out.append(dict(language='python', repo='staqc', query=q, text=text, style='so',
                        fn='so%d' % qid))
    subprocess.run(['rm', '-rf', root], check=True)
    out = write_pairs(args.out, unambiguous(out, dropped))
    log('staqc pairs: %d -> %s; dropped: %s' % (len(out), args.out, dict(sorted(dropped.items()))))


def ood_exclusions(cache):
    """Keys of what the out-of-distribution benchmarks hold, from their
    files in CACHE ($CODEVEC_OOD_CACHE): the code of every snippet of
    CoSQA's code base, of StaQC's dev/test corpus and of the hand-written
    set's repositories (parsed here with --strip-docs, as the pairs are,
    keyed by snippet_tree.text_key) and every query of their dev and test
    halves (norm_query).  Returns (text keys, queries, what was read)."""
    _, st = ood_modules()
    keys, qs, seen = set(), set(), []
    tmp = os.path.join(CACHE, 'ood-exclude')
    for name in ('cosqa', 'staqc'):
        path = os.path.join(cache, name + '.json')
        if not os.path.exists(path):
            log('exclude-ood: %s missing: %s not excluded' % (path, name))
            continue
        d = json.load(open(path, encoding='utf-8'))
        subprocess.run(['rm', '-rf', tmp], check=True)
        pre = 'c' if name == 'cosqa' else 's'
        parsed = st.write_tree([('%s%d' % (pre, s['cid']), s['code']) for s in d['corpus']
                                if s['code'].strip()], tmp, bs.LOADER, '--strip-docs')
        n0 = len(keys)
        keys.update(st.text_key(s['embed_text']) for v in parsed.values() for s in v
                    if s.get('embed_text'))
        qs.update(norm_query(q['query']) for sp in ('dev', 'test') for q in d[sp])
        seen.append('%s (%d code keys, %d queries)' % (name, len(keys) - n0,
                                                       len(d['dev']) + len(d['test'])))
    subprocess.run(['rm', '-rf', tmp], check=True)
    hand = os.path.join(cache, 'hand')
    if os.path.isdir(hand):
        n0 = len(keys)
        for repo in sorted(os.listdir(hand)):
            keys.update(st.text_key(s['embed_text']) for s in
                        bs.jsonl(os.path.join(hand, repo), '--strip-docs') if s.get('embed_text'))
        hq = os.path.join(ROOT, 'bench', 'quality', 'handwritten', 'questions.tsv')
        lines = open(hq, encoding='utf-8').read().splitlines()[1:]
        qs.update(norm_query(l.split('\t')[4]) for l in lines)
        seen.append('hand (%d code keys, %d queries)' % (len(keys) - n0, len(lines)))
    else:
        log('exclude-ood: %s missing: the hand-written set not excluded' % hand)
    return keys, qs, seen


def cmd_merge(args):
    """Merge pairs files (the package pairs, StaQC's; gzip or xz) into one,
    sorted; a pair whose query is a query of today's bench/quality (which
    may have been redrawn since an input was built) is dropped.  With
    --exclude-ood also every pair whose text is code of an out-of-
    distribution benchmark or whose query is one of its queries
    (ood_exclusions), and every other pair of the same function (fn)."""
    import lzma
    pairs = []
    for path in args.inputs:
        op = lzma.open if path.endswith('.xz') else gzip.open
        with op(path, 'rt', encoding='utf-8') as f:
            pairs.extend(json.loads(l) for l in f)
    queries = {norm_query(q['query']) for q in read_queries()}
    kept = [p for p in pairs if norm_query(p['query']) not in queries]
    log('merged %d pairs (%d left out: query in the benchmark)' % (len(kept), len(pairs) - len(kept)))
    if args.exclude_ood:
        _, st = ood_modules()
        keys, qs, seen = ood_exclusions(args.exclude_ood)
        why = collections.Counter()
        bad_fn = set()
        for p in kept:
            if st.text_key(p['text']) in keys:
                why['ood code/%s/%s' % (p['language'], p.get('style', 'doc'))] += 1
            elif norm_query(p['query']) in qs or norm_query(p.get('query_idfree') or '') in qs:
                why['ood query/%s/%s' % (p['language'], p.get('style', 'doc'))] += 1
            else:
                continue
            bad_fn.add(p.get('fn') or id(p))
        n = len(kept)
        kept = [p for p in kept if (p.get('fn') or id(p)) not in bad_fn]
        log('exclude-ood: %s; %d pairs left out (%s, with their functions\' other pairs)'
            % ('; '.join(seen), n - len(kept), dict(sorted(why.items()))))
        if args.stats:
            with open(args.stats, 'w') as f:
                json.dump(dict(pairs=len(kept), excluded=n - len(kept), why=dict(sorted(why.items())),
                               sources=seen), f, indent=1)
    out = write_pairs(args.out, kept)
    by = collections.Counter('%s/%s' % (p['language'], p.get('style', 'doc')) for p in out)
    log('-> %s: %d pairs %s' % (args.out, len(out), dict(sorted(by.items()))))


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
    ap.add_argument('--staqc-codexglue', help="staqc: a copy of microsoft/CodeXGLUE (work tree or git dir; "
                    "the annotated training split's label-1 pairs)")
    ap.add_argument('--staqc-unpinned', action='store_true',
                    help='staqc: skip the hash checks (a test fixture)')
    ap.add_argument('--exclude-ood', metavar='DIR',
                    help='merge: leave out the code and queries of the OOD benchmarks whose '
                         'files are in DIR ($CODEVEC_OOD_CACHE: cosqa.json, staqc.json, hand/)')
    args = ap.parse_args()
    os.makedirs(args.cache, exist_ok=True)
    {'pin': cmd_pin, 'pairs': cmd_pairs, 'tree': cmd_tree, 'staqc': cmd_staqc,
     'merge': cmd_merge}[args.command](args)


if __name__ == '__main__':
    main()
