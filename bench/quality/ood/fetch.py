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

  StaQC (Yao et al., WWW 2018): Stack Overflow question titles with the code
  snippet that answers them; the authors' split of the Python multi-code
  answers (data/data_hnn/python/{valid,test}/iids.pickle) as dev / test,
  each title ranked against the code snippets of its split.
      git clone https://github.com/LittleYUYU/StackOverflow-Question-Code-Dataset
      git -C StackOverflow-Question-Code-Dataset checkout 81b74afb40b2c57b34a92ad94a67ade0c305d101
      fetch.py staqc --from StackOverflow-Question-Code-Dataset
  The two text pickles are large files that the archive used here did not
  hold, so their sha256 is unknown to us: they are checked by their git blob
  ids (sha1 of "blob <size>\\0" + content, what `git ls-tree` shows at that
  commit), the split files by sha256.

--from takes a work tree or a bare git directory (then files are read with
`git show COMMIT:PATH`, so the commit is the pinned one whatever is checked
out).  A wrong hash stops the script with exit 1 and the file named.
"""

import hashlib
import json
import os
import pickle
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
STAQC = dict(
    url='https://github.com/LittleYUYU/StackOverflow-Question-Code-Dataset',
    commit='81b74afb40b2c57b34a92ad94a67ade0c305d101',
    files={
        'data/data_hnn/python/test/iids.pickle':
            'de3a884aa900c290711e5976bef85bc5d1161a3505618020e033958eb968d2fa',
        'data/data_hnn/python/valid/iids.pickle':
            '43eadb32cfa533ae49cde7fa64a735ae24284a4d529e05d095fd881dc0b54fc3',
    },
    blobs={
        STAQC_SRC + 'python_how_to_do_it_by_classifier_multiple_iid_to_code.pickle':
            '9ca7a69f2fad78db961ca9e540edc540eba14652',
        STAQC_SRC + 'python_how_to_do_it_by_classifier_multiple_qid_to_title.pickle':
            '80df0165452c305e0f10c717a73c2326a33f5909',
    })


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


def checked(spec, src):
    """Every file of SPEC, hash-checked; returns {path: bytes}."""
    out = {}
    for path, want in spec['files'].items():
        b = read(spec, src, path)
        got = hashlib.sha256(b).hexdigest()
        if got != want:
            die('%s: sha256 %s, expected %s' % (path, got, want))
        out[path] = b
    for path, want in spec.get('blobs', {}).items():
        b = read(spec, src, path)
        got = hashlib.sha1(b'blob %d\0' % len(b) + b).hexdigest()
        if got != want:
            die('%s: git blob id %s, expected %s' % (path, got, want))
        print('%s sha256 %s' % (path, hashlib.sha256(b).hexdigest()))
        out[path] = b
    return out


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


def staqc(src):
    if src is None:
        die('staqc needs --from PATH (a clone of %s)' % STAQC['url'])
    f = checked(STAQC, src)
    ld = lambda p: pickle.loads(f[p], encoding='latin1')
    code = ld(STAQC_SRC + 'python_how_to_do_it_by_classifier_multiple_iid_to_code.pickle')
    title = ld(STAQC_SRC + 'python_how_to_do_it_by_classifier_multiple_qid_to_title.pickle')
    out = dict(name='staqc', language='python', source=STAQC['url'], commit=STAQC['commit'],
               dev=[], test=[], corpus=[])
    cids = {}
    for part, split in (('valid', 'dev'), ('test', 'test')):
        for qid, ci in sorted(ld('data/data_hnn/python/%s/iids.pickle' % part)):
            if (qid, ci) not in code or qid not in title:
                continue
            cid = cids.setdefault((qid, ci), len(cids))
            out['corpus'].append(dict(cid=cid, code=code[(qid, ci)], split=split))
            out[split].append(dict(qid='%d-%d' % (qid, ci), query=title[qid], targets=[cid]))
    return out


def main():
    args = sys.argv[1:]
    src = None
    if '--from' in args:
        i = args.index('--from')
        src = args[i + 1]
        del args[i:i + 2]
    if len(args) != 1 or args[0] not in ('cosqa', 'staqc'):
        sys.exit(__doc__)
    d = cosqa(src) if args[0] == 'cosqa' else staqc(src)
    os.makedirs(CACHE, exist_ok=True)
    path = os.path.join(CACHE, d['name'] + '.json')
    with open(path, 'w', encoding='utf-8') as fo:
        json.dump(d, fo)
    print('%s: %d dev, %d test queries, %d corpus snippets -> %s' % (
        d['name'], len(d['dev']), len(d['test']), len(d['corpus']), path))


if __name__ == '__main__':
    main()
