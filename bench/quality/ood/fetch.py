#!/usr/bin/env python3
"""bench/quality/ood/fetch.py — obtain the out-of-distribution query sets
(CoSQA, StaQC) at pinned commits, check every file's hash, and write each as
one JSON file {name, dev: [...], test: [...], corpus: [...]} in the cache.

The data stays outside the repository ($CODEVEC_OOD_CACHE, default
/tmp/codevec-ood). How a user obtains the files:

  CoSQA (Huang et al., ACL 2021, arXiv:2105.13239), retrieval setting of the
  authors' repository: 500 dev and 500 test web queries (Bing logs) with a
  human-labelled answering function each, ranked against a code base of
  6,267 Python functions.
      git clone https://github.com/Jun-jie-Huang/CoCLR
      git -C CoCLR checkout 14ebcacf9e9bc3e7109102632bc63047876f27d2
      fetch.py cosqa --from CoCLR
  (or without --from: the three files are downloaded from
  raw.githubusercontent.com at that commit). Files and sha256 in COSQA below.

  StaQC (Yao et al., WWW 2018, arXiv:1803.09371): Stack Overflow question
  titles with the code snippets of their accepted answers.  The benchmark is
  the authors' manually annotated Python split (data/data_hnn/python/
  {valid,test}/iids.pickle; the annotators' agreed labels in
  annotation_tool/crowd_sourcing/python_annotator/all_agreed_iid_to_label.pickle):
  dev = the valid questions, test = the test questions, each with its
  label-1 snippets (a standalone solution) as targets, ranked against every
  annotated snippet of both splits (function staqc below).
      git clone https://github.com/LittleYUYU/StackOverflow-Question-Code-Dataset
      git -C StackOverflow-Question-Code-Dataset checkout 81b74afb40b2c57b34a92ad94a67ade0c305d101
      fetch.py staqc --from StackOverflow-Question-Code-Dataset [--tree DIR]
  --tree DIR also writes the corpus as a tree for codevec-load (s<cid>.py
  per snippet; a snippet without a definition inside `def snippet():`, see
  snippet_tree.py).  The code and title pickles are 4 MiB and more and no
  copy of their content was at hand here (2026-12-04: the repository
  snapshots this project can read lack every file of 4 MiB and more, in
  the original and its forks), so their sha256 is unknown to us: they are
  checked by their git blob ids at that commit (sha1 of "blob <size>\\0" +
  content, what `git ls-tree` shows), the small files by sha256.  A clone
  with git-lfs is not needed: the pickles are plain git blobs.
  --unpinned skips every hash check and marks the output so (test fixtures
  only).

  StaQC from CodeXGLUE (what this project's benchmark uses since
  2026-12-06, the text pickles above being out of reach): CodeXGLUE's copy
  of the annotated pairs (STAQC_CXG below), StaQC's valid split halved
  into dev and test by a hash of the title (function staqc_codexglue):
      git clone https://github.com/microsoft/CodeXGLUE
      fetch.py staqc --codexglue --from CodeXGLUE [--tree DIR]
  (or without --from: downloaded from raw.githubusercontent.com at the
  pinned commit).

--from takes a work tree or a bare git directory (then files are read with
`git show COMMIT:PATH`, so the commit is the pinned one whatever is checked
out).  A wrong hash stops the script with exit 1 and the file named.
"""

import collections
import hashlib
import json
import os
import pickle
import re
import subprocess
import sys
import urllib.request

CACHE = os.environ.get('CODEVEC_OOD_CACHE', '/tmp/codevec-ood')

COSQA = dict(
    url='https://github.com/Jun-jie-Huang/CoCLR',
    commit='14ebcacf9e9bc3e7109102632bc63047876f27d2',
    files={
        'data/search/code_idx_map.txt':
            'be8a910ca03cb9f1b38a0eba6dc8109eeb8040a40aaba1a467a7b8426d261f3f',
        'data/search/cosqa-retrieval-dev-500.json':
            'ccdfffee7ae1f1cf1a0406566a61c984f4fbce678c8ea108eedd03d11bff9518',
        'data/search/cosqa-retrieval-test-500.json':
            '27d3552b2e7dd86cf9f9a0b3c135e6777d4faafa9c29fb1b9b01ece945974ad6',
    })

STAQC_SRC = 'annotation_tool/data/code_solution_labeled_data/source/'
STAQC_HNN = 'data/data_hnn/python/'
STAQC_LABELS = 'annotation_tool/crowd_sourcing/python_annotator/all_agreed_iid_to_label.pickle'
STAQC_MULTI = 'final_collection/python_multi_code_iids.txt'
STAQC_MULTI_CODE = STAQC_SRC + 'python_how_to_do_it_by_classifier_multiple_iid_to_code.pickle'
STAQC_MULTI_TITLE = STAQC_SRC + 'python_how_to_do_it_by_classifier_multiple_qid_to_title.pickle'
STAQC_SINGLE_CODE = STAQC_SRC + \
    'python_how_to_do_it_qid_by_classifier_unlabeled_single_code_answer_qid_to_code.pickle'
STAQC_SINGLE_TITLE = STAQC_SRC + \
    'python_how_to_do_it_qid_by_classifier_unlabeled_single_code_answer_qid_to_title.pickle'
STAQC = dict(
    url='https://github.com/LittleYUYU/StackOverflow-Question-Code-Dataset',
    commit='81b74afb40b2c57b34a92ad94a67ade0c305d101',
    # small files: sha256 (read from a copy of the repository at the commit)
    files={
        STAQC_HNN + 'train/iids.pickle':
            '59fa02a1276c1a3d952b3b1ab5ad455b728edbdc3a59ff16ac0176b801e9ca1a',
        STAQC_HNN + 'valid/iids.pickle':
            '43eadb32cfa533ae49cde7fa64a735ae24284a4d529e05d095fd881dc0b54fc3',
        STAQC_HNN + 'test/iids.pickle':
            'de3a884aa900c290711e5976bef85bc5d1161a3505618020e033958eb968d2fa',
        STAQC_LABELS:
            '4ce1e72706c96299f281065e4f632e37e06c2384fa1cbf09b40c0860bb1d0114',
        STAQC_MULTI:
            '1ab3329a05667a59601d8411c2b1e85f142a39c975685df1eaacc5d4a2e9e1a3',
    },
    # the text pickles (4 MiB and more; no copy of their content was at
    # hand to take a sha256 from): their git blob ids at the commit
    blobs={
        STAQC_MULTI_CODE: '9ca7a69f2fad78db961ca9e540edc540eba14652',
        STAQC_MULTI_TITLE: '80df0165452c305e0f10c717a73c2326a33f5909',
        STAQC_SINGLE_CODE: '440e7c294d3ea6a678a1c5f297ff9a65cc05d1c4',
        STAQC_SINGLE_TITLE: '9c545f5508c36597e3600796e4dc640c3ee67147',
    })
# CodeXGLUE's copy of StaQC's annotated Python pairs (title, code, label),
# in the NL-code-search-WebQuery task until commit 5991f7d replaced it by a
# download: the valid split with the annotators' labels (the same 976 pairs,
# 786 questions and 421 label-1 snippets as STAQC_HNN valid with
# STAQC_LABELS), the test split's 976 pairs without labels, and 2,932
# training pairs with labels. Row order differs from StaQC's iids and the
# question ids are not in it, so the test labels cannot be joined here.
CXG = 'Text-Code/NL-code-search-WebQuery/data/'
STAQC_CXG = dict(
    url='https://github.com/microsoft/CodeXGLUE',
    commit='32e497e8345ecfc6e5295c90c5dca5212d6bf44a',
    files={
        CXG + 'dev_staqc.json': '67f4decf619d89b9a4171b77ec42d50fae4116bf904964936f2d79cbe53a577e',
        CXG + 'test_staqc.json': '2b8a271e1694d936f6834b3a0e4955ae6b0a2bc6bb1b8a2b5474995289782ab0',
        CXG + 'train_staqc.json': '146b2c05c7cd821756070c788833debec8bc3ce7a3a1067a1345aae116542f69',
    })

# what the benchmark needs (the training pairs also read the single-code ones)
STAQC_BENCH = (STAQC_HNN + 'valid/iids.pickle', STAQC_HNN + 'test/iids.pickle', STAQC_LABELS,
               STAQC_MULTI_CODE, STAQC_MULTI_TITLE)


def title_text(title):
    """A Stack Overflow title as a query: its words joined by single spaces."""
    return ' '.join(str(title).split())


def die(msg):
    print('fetch.py: ' + msg, file=sys.stderr)
    sys.exit(1)


def read(spec, src, path):
    """Bytes of PATH at the pinned commit: from SRC (work tree or git dir) or the web."""
    if src is None:
        url = spec['url'].replace('github.com', 'raw.githubusercontent.com') + \
            '/%s/%s' % (spec['commit'], path)
        with urllib.request.urlopen(url, timeout=120) as r:
            return r.read()
    gitdir = src if os.path.exists(os.path.join(src, 'objects')) else os.path.join(src, '.git')
    if os.path.isdir(gitdir):
        r = subprocess.run(['git', '--git-dir', gitdir, 'show', '%s:%s' % (spec['commit'], path)],
                           capture_output=True)
        if r.returncode == 0:
            return r.stdout
        die('%s: not at commit %s in %s (%s)' % (path, spec['commit'], src,
                                                  r.stderr.decode().strip()))
    with open(os.path.join(src, path), 'rb') as f:
        return f.read()


def checked(spec, src, only=None, unpinned=False):
    """The files of SPEC (those in ONLY when given), hash-checked (unless
    UNPINNED: a test fixture); returns {path: bytes}."""
    out = {}
    pins = [(p, 'sha256', h) for p, h in spec['files'].items()] + \
        [(p, 'blob', h) for p, h in spec.get('blobs', {}).items()]
    for path, kind, want in pins:
        if only is not None and path not in only:
            continue
        b = read(spec, src, path)
        if kind == 'sha256':
            got = hashlib.sha256(b).hexdigest()
        else:
            got = hashlib.sha1(b'blob %d\0' % len(b) + b).hexdigest()
        if got != want and not unpinned:
            die('%s: %s %s, expected %s' % (path, 'sha256' if kind == 'sha256' else 'git blob id',
                                            got, want))
        if kind == 'blob':
            print('%s sha256 %s' % (path, hashlib.sha256(b).hexdigest()))
        out[path] = b
    return out


def unpickle(b):
    """A Python 2 pickle of the StaQC repository: str objects were bytes
    there; read as latin-1 and, where they are UTF-8, decoded as such."""
    def fix(x):
        if isinstance(x, str):
            try:
                return x.encode('latin-1').decode('utf-8')
            except UnicodeError:
                return x
        if isinstance(x, dict):
            return {k: fix(v) for k, v in x.items()}
        return x
    return fix(pickle.loads(b, encoding='latin1'))


def cosqa(src):
    f = checked(COSQA, src)
    code_idx = json.loads(f['data/search/code_idx_map.txt'])
    corpus = sorted(((i, c) for c, i in code_idx.items()))
    if [i for i, _ in corpus] != list(range(len(corpus))):
        die('code_idx_map.txt: ids are not 0..n-1')

    def split(name):
        rows = json.loads(f['data/search/cosqa-retrieval-%s-500.json' % name])
        return [dict(qid=r['idx'], query=r['doc'], targets=[int(r['retrieval_idx'])])
                for r in rows]
    return dict(name='cosqa', language='python', source=COSQA['url'], commit=COSQA['commit'],
                dev=split('dev'), test=split('test'),
                corpus=[dict(cid=i, code=c) for i, c in corpus])


def staqc_files(src, only=None, unpinned=False):
    """The StaQC files (all, or ONLY), checked and unpickled: {path: object}
    (the multi-code id list as a list of (question id, code index))."""
    f = checked(STAQC, src, only, unpinned)
    out = {}
    for p, b in f.items():
        if p == STAQC_MULTI:
            out[p] = [tuple(int(x) for x in re.findall(r'-?\d+', l)) for l in
                      b.decode().splitlines() if l.strip()]
        else:
            out[p] = unpickle(b)
    return out


def staqc(src, unpinned=False):
    """StaQC's manually annotated Python split as a retrieval benchmark:
    dev = the questions of the authors' valid split, test = those of the
    test split, each with the code snippets the annotators all agreed are a
    standalone solution (label 1) as its targets; questions without one are
    left out.  The corpus is every annotated snippet of both splits (label 1
    and label 0: the other snippets of the same answer posts are the
    hardest distractors), one shared corpus as CoSQA's."""
    f = staqc_files(src, STAQC_BENCH, unpinned)
    code, title = f[STAQC_MULTI_CODE], f[STAQC_MULTI_TITLE]
    label = f[STAQC_LABELS]
    out = dict(name='staqc', language='python', source=STAQC['url'], commit=STAQC['commit'],
               dev=[], test=[], corpus=[], unpinned=unpinned,
               skipped=collections.Counter())
    cids = {}
    for part, split in (('valid', 'dev'), ('test', 'test')):
        targets = collections.OrderedDict()
        for iid in sorted(f[STAQC_HNN + part + '/iids.pickle']):
            c = code.get(iid)
            if c is None or not str(c).strip():
                out['skipped']['no code'] += 1
                continue
            cid = cids.setdefault(iid, len(cids))
            out['corpus'].append(dict(cid=cid, code=str(c), qid=iid[0], index=iid[1],
                                      split=split, label=label.get(iid)))
            if label.get(iid) == 1:
                targets.setdefault(iid[0], []).append(cid)
        for qid, ts in targets.items():
            if qid not in title:
                out['skipped']['no title'] += 1
                continue
            out[split].append(dict(qid=qid, query=title_text(title[qid]), targets=ts))
    out['skipped'] = dict(out['skipped'])
    return out


def staqc_codexglue(src, unpinned=False):
    """StaQC's annotated valid split from CodeXGLUE's copy (STAQC_CXG) as a
    retrieval benchmark, halved: its questions with at least one label-1
    snippet (388) go to the dev or the test half by the parity of the first
    byte of sha256(title) (a fixed split that depends on nothing else);
    targets are the question's label-1 snippets. The corpus is every pair's
    snippet of CodeXGLUE's valid and test files (as staqc() below: the
    label-0 snippets of the same posts are the hardest distractors), less
    the test file's snippets of a query's own question: StaQC splits
    question-snippet pairs, not questions (261 titles have snippets in
    both files), and those snippets carry no label here, so an answer
    among them would count as a miss. StaQC's own test split cannot be the
    test half: its labels are in STAQC_LABELS by question id and
    CodeXGLUE's test rows carry none."""
    f = checked(STAQC_CXG, src, (CXG + 'dev_staqc.json', CXG + 'test_staqc.json'), unpinned)
    valid = json.loads(f[CXG + 'dev_staqc.json'])
    test = json.loads(f[CXG + 'test_staqc.json'])
    skip = "test snippet of a query's question"
    out = dict(name='staqc', language='python', source=STAQC_CXG['url'], commit=STAQC_CXG['commit'],
               dev=[], test=[], corpus=[], unpinned=unpinned, split='sha256(title)[0] % 2: even dev, odd test',
               skipped={skip: 0})
    queries = {title_text(r['doc']) for r in valid if r['label'] == 1}
    targets = collections.OrderedDict()
    for part, rows in (('valid', valid), ('test', test)):
        for r in sorted(rows, key=lambda r: r['idx']):
            if part == 'test' and title_text(r['doc']) in queries:
                out['skipped'][skip] += 1
                continue
            cid = len(out['corpus'])
            out['corpus'].append(dict(cid=cid, code=r['code'], part=part, label=r.get('label')))
            if part == 'valid' and r['label'] == 1:
                targets.setdefault(title_text(r['doc']), []).append(cid)
    for i, (title, ts) in enumerate(targets.items()):
        half = 'dev' if hashlib.sha256(title.encode()).digest()[0] % 2 == 0 else 'test'
        out[half].append(dict(qid=i, query=title, targets=ts))
    return out


def loader_path():
    """codevec-load: $CODEVEC_LOAD, else the one PATH or pg_config's bindir has."""
    if os.environ.get('CODEVEC_LOAD'):
        return os.environ['CODEVEC_LOAD']
    for d in os.environ.get('PATH', '').split(':'):
        if os.access(os.path.join(d, 'codevec-load'), os.X_OK):
            return os.path.join(d, 'codevec-load')
    bindir = subprocess.run(['pg_config', '--bindir'], capture_output=True, text=True).stdout.strip()
    return os.path.join(bindir, 'codevec-load')


def staqc_tree(d, root):
    """The benchmark's corpus as a tree for codevec-load: s<cid>.py per
    snippet (snippet_tree: wrapped in `def snippet():` where the loader
    finds no definition); returns how many files parse to nothing."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import snippet_tree
    subprocess.run(['rm', '-rf', root], check=True)
    items = [('s%d' % s['cid'], s['code']) for s in d['corpus']]
    parsed = snippet_tree.write_tree(items, root, loader_path())
    wrapped = sum(1 for n, _ in items if n in parsed and
                  parsed[n][0]['qualified_name'] == n + '.snippet')
    print('staqc tree %s: %d files, %d wrapped in def snippet(), %d give no snippet' % (
        root, len(items), wrapped, len(items) - len(parsed)))
    return len(items) - len(parsed)


def main():
    args = sys.argv[1:]
    src = tree = None
    unpinned = '--unpinned' in args
    if unpinned:
        args.remove('--unpinned')
    codexglue = '--codexglue' in args
    if codexglue:
        args.remove('--codexglue')
    for opt in ('--from', '--tree'):
        if opt in args:
            i = args.index(opt)
            if opt == '--from':
                src = args[i + 1]
            else:
                tree = args[i + 1]
            del args[i:i + 2]
    if len(args) != 1 or args[0] not in ('cosqa', 'staqc') or ((tree or codexglue) and args[0] != 'staqc'):
        sys.exit(__doc__)
    if args[0] == 'cosqa':
        d = cosqa(src)
    else:
        d = staqc_codexglue(src, unpinned) if codexglue else staqc(src, unpinned)
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, d['name'] + '.json')
    with open(path, 'w', encoding='utf-8') as fo:
        json.dump(d, fo)
    print('%s: %d dev, %d test queries, %d corpus snippets -> %s%s' % (
        d['name'], len(d['dev']), len(d['test']), len(d['corpus']), path,
        ' (UNPINNED: hashes not checked)' if unpinned else ''))
    if tree:
        staqc_tree(d, tree)


if __name__ == '__main__':
    main()
