#!/usr/bin/env python3
"""bench/quality/build-set.py — build the retrieval-quality evaluation set.

The CodeSearchNet recipe (Husain et al. 2019, arXiv:1909.09436) on code none
of us wrote: documented functions of real projects installed from package
registries; the query is the first sentence of a function's doc, the target
is that function, and docs are removed from what gets indexed so the answer
cannot be copied from the index.

Steps (every one deterministic; the only randomness is the seeded sample):

  1. fetch   every package of manifest.tsv at its pinned version (Debian:
             `apt-get download PKG=VERSION`; Debian source packages, source
             'dsc': `apt-get source --download-only PKG=VERSION` with a
             private deb-src list in the cache, the .dsc's sha256 pinned
             and the tarballs checked against it by dpkg-source; PyPI: `pip
             download --no-deps --only-binary=:all: PKG==VERSION`), check
             its sha256, unpack it (into $CODEVEC_QUALITY_CACHE, outside the
             git work tree).  A root 'ARCHIVE!DIR' is the folder DIR of an
             archive the package ships (linux-source's tarball, the JDK's
             src.zip), unpacked beside it.
  2. select  the source files of the repo's language under its root, minus
             tests, benchmarks, examples, vendored copies, generated and
             minified files (EXCLUDE_* below and the manifest's excludes).
  3. dedupe  whole files that repeat already-kept code (JavaScript packages
             ship the same functions as CommonJS, ESM, UMD and dist bundles):
             a file is dropped when half or more of its snippets' code is
             already in the corpus.  Files are visited with bundle-looking
             paths last so the source copy is the one kept.
  4. check  that `codevec-load --strip-docs` (what run.sh loads with) leaves
             every snippet of the corpus in place (same repo, path,
             qualified_name, start_line) and no doc anywhere: the loader
             blanks doc comments and Python docstrings out of what it
             indexes, keeping line numbers.
  5. queries from the loader's own JSON lines of the corpus (docs kept)
             (`codevec-load --jsonl`): functions, methods and constructors
             with a doc, at least 3 lines of code, unique code, whose cleaned
             first sentence has 4..40 words, is not a bare restatement of the
             name, and is the doc of no other snippet; at most CAP_PER_GROUP
             per (repo, top-level folder), then a seeded sample of up to
             PER_LANGUAGE per language.

Languages: Go, JavaScript, Python and Rust first (qids 1..2400, the same
bytes as before the others were added: their packages, rules and random
draws are unchanged), then C, C++, Java and TypeScript (qids 2401..).  For
the second four the doc comment's markup is cut first (doxygen_doc:
Doxygen @brief / \\brief and @fn lines, kernel-doc 'name() - text',
gtk-doc 'name:' headers with their @arg lines, Javadoc / TSDoc block tags,
'**' comment lines; @inheritDoc / @copydoc docs make no query), and a few
more folders and file names count as tests or samples (NEW_EXCLUDE_*).

Outputs: $CODEVEC_QUALITY_CACHE/corpus/<repo>/... (default /tmp/codevec-quality;
the files run.sh loads), queries.tsv.gz and corpus-stats.json (committed).

Usage: python3 build-set.py [--cache DIR] [--per-language N] [--seed S]
"""

import argparse
import collections
import fnmatch
import gzip
import hashlib
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))

EXTS = {
    'go': ('.go',),
    'rust': ('.rs',),
    'javascript': ('.js', '.cjs', '.mjs'),
    'python': ('.py',),
    # the languages added second (issue 14): their queries come after the
    # first four's, which stay byte-identical
    'c': ('.c', '.h'),
    'cpp': ('.cc', '.cpp', '.cxx', '.hpp', '.hh', '.hxx', '.h', '.ipp', '.tcc'),
    'java': ('.java',),
    'typescript': ('.ts', '.mts', '.cts'),
}
FIRST_LANGS = ('go', 'javascript', 'python', 'rust')
NEW_LANGS = ('c', 'cpp', 'java', 'typescript')
# more folders never loaded for the new languages only (the first four's
# selection stays as it was): build scripts, samples, generated code
NEW_EXCLUDE_DIRS = {'samples', 'sample', 'demo', 'demos', 'jtreg', 'unittest', 'unittests',
                    'gtest', 'mock', 'mocks', 'generated', 'gen', 'third_party',
                    'thirdparty', 'third-party', 'external', 'contrib', 'scripts',
                    'dist', 'build', 'out', 'lib-cov', 'coverage'}
NEW_EXCLUDE_FILES = ['*Test.java', '*Tests.java', '*_test.c', '*_test.cc', '*_test.cpp',
                     '*_unittest.cc', 'test_*.c', '*.test.ts', '*.spec.ts', '*.d.mts',
                     '*.d.cts']
# path components never loaded (tests, benchmarks, examples, vendored code,
# generated bundles); matched against every folder name and the file name
EXCLUDE_DIRS = {'test', 'tests', '__tests__', 'testing', 'testdata', 'spec',
                'specs', 'bench', 'benches', 'benchmark', 'benchmarks',
                'example', 'examples', 'vendor', 'vendored', '_vendor',
                'node_modules', 'fixtures', 'docs', 'doc', 'min', 'perf'}
EXCLUDE_FILES = ['*_test.go', 'test_*.py', '*_test.py', 'conftest.py',
                 '*.min.js', '*-min.js', '*.min.mjs', '*-min.mjs', '*.d.ts',
                 'z*_*.go', 'build.rs', '*.test.js', '*.spec.js', 'setup.py']
BUNDLE_HINTS = ('/dist/', '/browser/', '/umd/', '/amd/', '/esm/', '/bundle',
                '-umd.', '-esm.', '.umd.', '.esm.', '.es5.', '.all.',
                '.compat.', '/build/', '/cjs/', '.bundle.')

PER_LANGUAGE = 600
CAP_PER_GROUP = 60
SEED = 20261121

def find_loader():
    if os.environ.get('CODEVEC_LOAD'):
        return os.environ['CODEVEC_LOAD']
    w = shutil.which('codevec-load')
    if w:
        return w
    bindir = subprocess.run(['pg_config', '--bindir'], stdout=subprocess.PIPE,
                            text=True).stdout.strip()
    for d in (bindir, '/usr/lib/postgresql/15/bin'):
        if os.access(os.path.join(d, 'codevec-load'), os.X_OK):
            return os.path.join(d, 'codevec-load')
    sys.exit('codevec-load not found (make -C loaders install, or set CODEVEC_LOAD)')


LOADER = find_loader()
# outside the git work tree: the loader skips gitignored files inside one
CACHE = os.environ.get('CODEVEC_QUALITY_CACHE', '/tmp/codevec-quality')


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for b in iter(lambda: f.read(1 << 20), b''):
            h.update(b)
    return h.hexdigest()


def read_manifest(path):
    rows = []
    with open(path) as f:
        for line in f:
            if line.startswith('#') or not line.strip():
                continue
            repo, lang, src, pkg, ver, sha, root, excl = line.rstrip('\n').split('\t')
            rows.append(dict(repo=repo, lang=lang, source=src, package=pkg,
                             version=ver, sha256=None if sha == '-' else sha, root=root,
                             exclude=[] if excl == '-' else excl.split(',')))
    return rows


APT_SOURCES = """\
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-updates main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
"""


def apt_source_cmd(cache):
    """apt-get with a private deb-src list under cache/apt (the machine's
    apt configuration is left alone), updated once per cache."""
    d = os.path.join(cache, 'apt')
    opts = ['-o', 'Dir::Etc::SourceList=' + os.path.join(d, 'sources.list'),
            '-o', 'Dir::Etc::SourceParts=' + os.path.join(d, 'parts'),
            '-o', 'Dir::State::Lists=' + os.path.join(d, 'lists'),
            '-o', 'Dir::Cache=' + os.path.join(d, 'cache')]
    if not os.path.exists(os.path.join(d, 'updated')):
        for sub in ('parts', 'lists/partial', 'cache/archives/partial'):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        with open(os.path.join(d, 'sources.list'), 'w') as f:
            f.write(APT_SOURCES)
        subprocess.run(['apt-get', '-q'] + opts + ['update'], check=True,
                       stdout=subprocess.DEVNULL)
        open(os.path.join(d, 'updated'), 'w').close()
    return ['apt-get'] + opts


def fetch(row, cache):
    """Download one pinned package into cache/dl, check its sha256 (None: not
    pinned yet, no check), return its path."""
    dl = os.path.join(cache, 'dl')
    os.makedirs(dl, exist_ok=True)
    if row['source'] == 'dsc':
        # a Debian source package: .dsc + tarballs; the sha256 pinned is the
        # .dsc's, which pins the tarballs' own sha256 (checked on unpacking)
        name = '%s_%s.dsc' % (row['package'], re.sub(r'^\d+:', '', row['version']))
        path = os.path.join(dl, name)
        if not os.path.exists(path):
            subprocess.run(apt_source_cmd(cache) + ['source', '--download-only', '-q',
                            '%s=%s' % (row['package'], row['version'])],
                           cwd=dl, check=True, stdout=subprocess.DEVNULL)
    elif row['source'] == 'pool':
        # one file of a Debian source package (its .orig tarball) straight
        # from the archive's pool, where the source package as a whole is
        # not downloadable (a component tarball missing from the mirror):
        # package = the source package, version = the file name, sha256
        # = the file's (the value the package's .dsc lists for it)
        path = os.path.join(dl, row['version'])
        if not os.path.exists(path):
            pkg = row['package']
            url = 'http://deb.debian.org/debian/pool/main/%s/%s/%s' % (
                pkg[:4] if pkg.startswith('lib') else pkg[0], pkg, row['version'])
            subprocess.run(['curl', '-sSfL', '-o', path + '.part', url], check=True)
            os.rename(path + '.part', path)
    elif row['source'] == 'deb':
        prefix = '%s_%s_' % (row['package'], row['version'].replace(':', '%3a'))
        have = lambda: [f for f in os.listdir(dl) if f.startswith(prefix) and f.endswith('.deb')]
        if not have():
            subprocess.run(['apt-get', 'download', '-q',
                            '%s=%s' % (row['package'], row['version'])],
                           cwd=dl, check=True, stdout=subprocess.DEVNULL)
        path = os.path.join(dl, have()[0])
    else:
        have = [f for f in os.listdir(dl) if f.lower().startswith(
            '%s-%s-' % (row['package'].lower(), row['version']))]
        if not have:
            subprocess.run([sys.executable, '-m', 'pip', 'download', '-q', '--no-deps',
                            '--only-binary=:all:', '-d', dl,
                            '%s==%s' % (row['package'], row['version'])], check=True)
            have = [f for f in os.listdir(dl) if f.lower().startswith(
                '%s-%s-' % (row['package'].lower(), row['version']))]
        path = os.path.join(dl, have[0])
    got = sha256_file(path)
    if row['sha256'] is not None and got != row['sha256']:
        sys.exit('sha256 mismatch for %s: %s, manifest says %s' % (path, got, row['sha256']))
    return path


def extract(path, dest):
    """Unpack one archive (.deb, wheel/.zip, tar.*, Debian .dsc) into dest
    (made here; a half-made one from an interrupted run is redone)."""
    if os.path.isdir(dest):
        return
    tmp = dest + '.tmp'
    shutil.rmtree(tmp, ignore_errors=True)
    if path.endswith('.dsc'):
        # upstream source as released (no Debian patches); dpkg-source checks
        # every tarball against the sha256 the (pinned) .dsc lists
        os.makedirs(os.path.dirname(tmp), exist_ok=True)
        subprocess.run(['dpkg-source', '-q', '--no-copy', '-x', '--skip-patches', path, tmp], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        os.makedirs(tmp)
        if path.endswith('.deb'):
            subprocess.run(['dpkg-deb', '-x', path, tmp], check=True)
        elif path.endswith(('.whl', '.zip', '.jar')):
            with zipfile.ZipFile(path) as z:
                z.extractall(tmp)
        else:
            subprocess.run(['tar', '-xf', path, '-C', tmp], check=True)
    os.rename(tmp, dest)


def unpack(row, path, cache):
    """Unpack a package into cache/pkg/<repo> (the first four languages) or
    cache/pkg/<package>_<version> (the rest: rows that share a package share
    one copy); return the repo root folder.  A root 'ARCHIVE!DIR' names an
    archive inside the package (a source tarball, src.zip), unpacked beside
    it, and the folder DIR inside that."""
    if row['lang'] in FIRST_LANGS:
        dest = os.path.join(cache, 'pkg', row['repo'])
    else:
        dest = os.path.join(cache, 'pkg', '%s_%s' % (row['package'], row['version']))
    extract(path, dest)
    root = row['root']
    if '!' in root:
        inner, root = root.split('!', 1)
        xdest = os.path.join(dest + '.x', inner.replace('/', '_'))
        extract(os.path.join(dest, inner), xdest)
        dest = xdest
    return os.path.join(dest, root)


def excluded(rel, row):
    parts = rel.split('/')
    new = row['lang'] in NEW_LANGS
    for p in parts[:-1]:
        if p in EXCLUDE_DIRS or p.endswith('.dist-info') or p.startswith('.'):
            return True
        if new and p.lower() in NEW_EXCLUDE_DIRS:
            return True
    if any(fnmatch.fnmatch(parts[-1], g) for g in EXCLUDE_FILES):
        return True
    if new and any(fnmatch.fnmatch(parts[-1], g) for g in NEW_EXCLUDE_FILES):
        return True
    for g in row['exclude']:
        if rel == g or rel.startswith(g + '/') or fnmatch.fnmatch(rel, g):
            return True
    return False


def select_files(row, root):
    out = []
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            full = os.path.join(d, f)
            rel = os.path.relpath(full, root)
            if not f.endswith(EXTS[row['lang']]) or os.path.islink(full):
                continue
            if excluded(rel, row):
                continue
            if os.path.getsize(full) > 512 * 1024:      # generated tables, bundles
                continue
            out.append(rel)
    return out


def jsonl(path, *opts):
    """The loader's snippets of every file under path, as dicts."""
    p = subprocess.run([LOADER, '--jsonl', '-q', *opts, path], check=False,
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    if p.returncode not in (0, 1):
        sys.exit('%s --jsonl %s failed (%d)' % (LOADER, path, p.returncode))
    return [json.loads(l) for l in p.stdout.splitlines() if l.strip()]


def code_key(code):
    return hashlib.sha1(re.sub(r'\s+', ' ', code).strip().encode()).hexdigest()


def is_bundle(rel):
    r = '/' + rel
    return any(h in r for h in BUNDLE_HINTS)


# ---------------------------------------------------------------- queries

WORD = re.compile(r"[A-Za-z][A-Za-z0-9_'-]*")
STOP = set('a an the of to for in on and or is are be by with from this that it its '
           'as at into returns return gets get sets set new creates create'.split())
BAD = re.compile(r'(?i)\b(todo|fixme|xxx|hack|deprecated|copyright|license|eslint|jshint|'
                 r'istanbul|jscs|noinspection|nolint|go:generate|go:linkname|go:nosplit|'
                 r'@flow|@ts-|type: ?ignore|pylint|noqa|see above|see below|same as|'
                 r'alias (of|for)|shorthand for|internal use|do not use|don\'t use)\b')


def split_ident(s):
    s = re.sub(r'([a-z0-9])([A-Z])', r'\1 \2', s)
    s = re.sub(r'([A-Z]+)([A-Z][a-z])', r'\1 \2', s)
    return [w.lower() for w in re.split(r'[^A-Za-z0-9]+', s) if w]


def first_sentence(doc, lang):
    """The cleaned first sentence of a doc, or None when it makes no query."""
    text = doc.strip()
    # first paragraph only
    text = re.split(r'\n\s*\n', text, maxsplit=1)[0]
    if re.match(r'\s*[@:]', text):               # starts with a tag or field list
        return None
    if lang == 'python' and re.match(r'^\s*\w[\w.]*\(.*\)\s*(->.*)?$', text.split('\n')[0]):
        return None                               # a signature line, not prose
    text = ' '.join(text.split())
    # cut at the first tag / field list inside the paragraph
    text = re.split(r'\s[@]\w|\s:(param|returns?|rtype|raises|type)\b|\sArgs:|\sReturns:|\sParameters\s?-', text)[0]
    # markup: {@link X} / {@code X}, [`X`](...) / [X](url), `X`, :role:`X`, <tags>
    text = re.sub(r'\{@\w+\s+([^}]*)\}', r'\1', text)
    text = re.sub(r'\[([^\]]+)\]\([^)]*\)', r'\1', text)
    text = re.sub(r'\[`?([^\]`]+)`?\]\[[^\]]*\]', r'\1', text)
    text = re.sub(r'\[`([^\]`]+)`\]', r'\1', text)
    text = re.sub(r':[\w:]+:`~?([^`]*)`', r'\1', text)
    text = re.sub(r'<[^>]{1,40}>', ' ', text)
    text = text.replace('``', '').replace('`', '').replace('**', '').replace('__', '')
    text = re.sub(r'\*(\w)', r'\1', text)
    if re.search(r'https?://|www\.', text):
        return None
    # first sentence: a period (or ! ?) followed by space + capital / end
    m = re.search(r'[.!?](\s+(?=[A-Z(])|\s*$)', text)
    if m:
        text = text[:m.start()]
    elif len(text.split()) > 40:
        return None
    text = text.strip().rstrip(':;,').strip()
    return text or None


# Doxygen / Javadoc / TSDoc / kernel-doc / gtk-doc markup of the languages
# added second (applied to them only)
DOXY_TAG = re.compile(r'(?m)^\s*[@\\](brief|short|summary|details|description)\b:?\s*')
DOXY_HEAD = re.compile(r'(?m)^\s*[@\\](fn|func|function|def|class|struct|union|enum|file|'
                       r'var|typedef|namespace|interface|property|method|memberof|ingroup|'
                       r'addtogroup|defgroup|name|internal|private|protected|public|'
                       r'overload|override|static|hideinitializer|exception-safety)\b[^\n]*\n?')
DOXY_CUT = re.compile(r'\s[@\\](param|tparam|return|returns|retval|result|throws?|exception|'
                      r'note|see|sa|pre|post|since|warning|deprecated|author|code|example|'
                      r'remarks?|details|invariant|todo|bug|version|par|li|arg|ref|'
                      r'typeParam|defaultValue|link)\b')
GTKDOC_HEAD = re.compile(r'^\s*[A-Za-z_][\w:.~]*(\(\))?\s*:\s*(\([^)]*\)\s*)*$')
KERNELDOC_HEAD = re.compile(r'^\s*(?:(?:struct|union|enum|typedef|function)\s+)?'
                            r'[A-Za-z_][\w.~]*(?:::[\w~]+)*(?:\(\))?\s*(?:\s-+|:)\s+(\S.*)$')


def doxygen_doc(doc):
    """The description of a C/C++/Java/TypeScript doc comment, markup cut:
    a kernel-doc 'name() - text' or gtk-doc 'name:' + '@arg: ...' header, a
    Doxygen @fn/@class line and @brief/\\brief markers go; a doc that
    inherits (@inheritDoc, @copydoc) or is a separator line is no doc."""
    if re.search(r'[@\\](inheritDoc|copydoc|copybrief|copydetails)\b', doc):
        return None
    # '** text' (Lua, some C): the loader strips one star of a block comment
    lines = [re.sub(r'^\s*\*+(\s|$)', '', l) for l in doc.strip('\n').split('\n')]
    # Doxygen member groups: @{ @} \{ \}
    lines = [re.sub(r'[@\\][{}]', '', l) for l in lines]
    # separator / decoration lines (----, ====, ****) and leading blanks
    lines = [l for l in lines if not re.match(r'^\s*[-=*#~/+]{3,}\s*$', l)]
    while lines and not lines[0].strip():
        lines.pop(0)
    if not lines:
        return None
    m = KERNELDOC_HEAD.match(lines[0])
    if m:
        lines[0] = m.group(1)
    elif GTKDOC_HEAD.match(lines[0]):
        # gtk-doc: 'name:', then '@arg: ...' lines, a blank, the description
        i = 1
        while i < len(lines) and (re.match(r'^\s*@\w+:', lines[i]) or
                                  (lines[i].startswith((' ', '\t')) and lines[i].strip() and
                                   i > 1)):
            i += 1
        lines = lines[i:]
    text = '\n'.join(lines)
    text = DOXY_HEAD.sub('', text)
    text = DOXY_TAG.sub('', text, count=1)
    text = text.strip('\n')
    # first paragraph, then cut at the first block tag
    text = re.split(r'\n\s*\n', text, maxsplit=1)[0]
    text = DOXY_CUT.split(' ' + ' '.join(text.split()))[0].strip()
    # gtk-doc / Doxygen references: #GList, %NULL, ::name
    text = re.sub(r'(?<![\w&])(?:[#%]|::)(?=[A-Za-z_])', '', text)
    return text or None


def make_query(s):
    doc = s.get('doc')
    if not doc:
        return None
    if s['language'] in NEW_LANGS:
        doc = doxygen_doc(doc)
        if not doc:
            return None
    q = first_sentence(doc, s['language'])
    if not q:
        return None
    if BAD.search(q) or BAD.search(doc.split('\n')[0]):
        return None
    words = q.split()
    # Go (and often Rust/JS) docs start with the name: "Foo returns ..." -> "returns ..."
    sym = s['symbol']
    if words and words[0].strip('`\'",.()').lower() in (sym.lower(), s['qualified_name'].lower()):
        words = words[1:]
    elif len(words) > 1 and words[0].lower() in ('a', 'an', 'the') and \
            words[1].strip('`\'",.()').lower() == sym.lower():
        words = words[2:]
    if s['language'] in NEW_LANGS:
        while words and re.fullmatch(r'[-:\u2013\u2014]+', words[0]):
            words = words[1:]
    if len(words) < 4 or len(words) > 40:
        return None
    q = ' '.join(words)
    q = q[0].upper() + q[1:]
    if not re.search(r'[a-z]{3}', q) or sum(c.isalpha() for c in q) < 0.6 * len(q):
        return None
    # a restatement of the name: every content word is a part of the name
    content = [w.lower() for w in WORD.findall(q) if w.lower() not in STOP]
    name = set(split_ident(s['qualified_name']))
    if not content or all(w in name or w.rstrip('s') in name for w in content):
        return None
    return q


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--cache', default=CACHE)
    ap.add_argument('--manifest', default=os.path.join(HERE, 'manifest.tsv'))
    ap.add_argument('--per-language', type=int, default=PER_LANGUAGE)
    ap.add_argument('--cap-per-group', type=int, default=CAP_PER_GROUP)
    ap.add_argument('--seed', type=int, default=SEED)
    ap.add_argument('--out', default=os.path.join(HERE, 'queries.tsv.gz'))
    args = ap.parse_args()

    rows = read_manifest(args.manifest)
    corpus = os.path.join(args.cache, 'corpus')
    shutil.rmtree(corpus, ignore_errors=True)
    os.makedirs(corpus)

    seen_code = set()              # code keys of kept snippets, per language
    all_snips = []
    stats = collections.OrderedDict()
    for row in rows:
        root = unpack(row, fetch(row, args.cache), args.cache)
        files = select_files(row, root)
        files.sort(key=lambda r: (is_bundle(r), r))
        # parse the candidate files once (a staging copy), then keep files
        stage = os.path.join(args.cache, 'stage', row['repo'])
        shutil.rmtree(stage, ignore_errors=True)
        for rel in files:
            os.makedirs(os.path.dirname(os.path.join(stage, rel)), exist_ok=True)
            shutil.copyfile(os.path.join(root, rel), os.path.join(stage, rel))
        by_file = collections.defaultdict(list)
        for s in jsonl(stage):
            by_file[s['path']].append(s)
        kept = dropped = 0
        for rel in files:
            sn = [s for s in by_file.get(rel, []) if s['language'] == row['lang']]
            if not sn:
                continue
            keys = [(row['lang'], code_key(s['code'])) for s in sn]
            if sum(k in seen_code for k in keys) * 2 >= len(keys):
                dropped += 1
                continue
            if row['lang'] == 'python':
                try:
                    compile(open(os.path.join(stage, rel), 'rb').read(), rel, 'exec',
                            dont_inherit=True)
                except (SyntaxError, ValueError):
                    dropped += 1        # Python 2 files: not parseable, not loaded
                    continue
            seen_code.update(keys)
            kept += 1
            p = os.path.join(corpus, row['repo'], rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            shutil.copyfile(os.path.join(stage, rel), p)
            for s in sn:
                s['repo'] = row['repo']
                all_snips.append(s)
        shutil.rmtree(stage)
        stats[row['repo']] = dict(language=row['lang'], files=kept, dup_files_dropped=dropped,
                                  snippets=sum(1 for s in all_snips if s['repo'] == row['repo']))
        log('%-20s %-10s files %5d (dropped %4d) snippets %6d' % (
            row['repo'], row['lang'], kept, dropped, stats[row['repo']]['snippets']))

    # what the loader indexes with --strip-docs: the same snippets, no doc
    log('checking codevec-load --strip-docs ...')
    key = lambda s, repo: (repo, s['path'], s['qualified_name'], s['start_line'])
    orig_keys = collections.Counter(key(s, s['repo']) for s in all_snips)
    st_keys = collections.Counter()
    st_snips = []
    docs_left = 0
    for repo in stats:                # per repo: Python names depend on the root
        if not os.path.isdir(os.path.join(corpus, repo)):
            continue
        for s in jsonl(os.path.join(corpus, repo), '--strip-docs'):
            st_snips.append(s)
            st_keys[key(s, repo)] += 1
            docs_left += bool(s.get('doc'))
    missing = orig_keys - st_keys
    log('--strip-docs: %d snippets (%d without it), %d keys missing, %d docs left'
        % (len(st_snips), len(all_snips), sum(missing.values()), docs_left))
    # the first four languages: every snippet stays; the new ones: a snippet
    # that --strip-docs parses differently (a comment inside a macro-heavy
    # C line) is counted and gets no query
    first_missing = sum(n for k, n in missing.items()
                        if stats[k[0]]['language'] in FIRST_LANGS)
    if first_missing or docs_left:
        sys.exit('codevec-load --strip-docs does not index the corpus as expected')

    # queries
    code_count = collections.Counter((s['language'], code_key(s['code'])) for s in all_snips)
    qcount = collections.Counter()
    cands = []
    for s in all_snips:
        if s['kind'] not in ('function', 'method', 'constructor'):
            continue
        if s['end_line'] - s['start_line'] + 1 < 3:
            continue
        if 'test' in s['qualified_name'].lower():
            continue
        if code_count[(s['language'], code_key(s['code']))] > 1:
            continue
        if key(s, s['repo']) in missing:
            continue
        q = make_query(s)
        if q:
            cands.append((s, q))
    # a query that is the doc of two snippets is ambiguous: drop all of them
    qnorm = lambda q: re.sub(r'\W+', ' ', q.lower()).strip()
    for s, q in cands:
        qcount[(s['language'], qnorm(q))] += 1
    cands = [(s, q) for s, q in cands if qcount[(s['language'], qnorm(q))] == 1]

    rng = random.Random(args.seed)
    out = []
    per_lang_avail = collections.Counter()
    # the first four languages first, in the order (and so with the random
    # draws) they always had; the new ones after them
    langs = {s['language'] for s, _ in cands}
    order = sorted(langs & set(FIRST_LANGS)) + sorted(langs - set(FIRST_LANGS))
    for lang in order:
        groups = collections.defaultdict(list)
        for s, q in cands:
            if s['language'] == lang:
                groups[(s['repo'], s['path'].split('/')[0])].append((s, q))
        pool = []
        for g in sorted(groups):
            items = sorted(groups[g], key=lambda x: (x[0]['path'], x[0]['start_line']))
            rng.shuffle(items)
            pool.extend(items[:args.cap_per_group])
        per_lang_avail[lang] = len(pool)
        pool.sort(key=lambda x: (x[0]['repo'], x[0]['path'], x[0]['start_line']))
        rng.shuffle(pool)
        out.extend(pool[:args.per_language])
    out.sort(key=lambda x: (x[0]['language'] not in FIRST_LANGS, x[0]['language'], x[0]['repo'],
                            x[0]['path'], x[0]['start_line']))

    buf = io.StringIO()
    buf.write('qid\tlanguage\trepo\tpath\tqualified_name\tstart_line\tkind\tquery\n')
    for i, (s, q) in enumerate(out, 1):
        buf.write('\t'.join([str(i), s['language'], s['repo'], s['path'], s['qualified_name'],
                             str(s['start_line']), s['kind'], q.replace('\t', ' ')]) + '\n')
    # rewritten only when the queries change (the gzip header holds the file
    # name the set was first written under: same queries, other bytes)
    try:
        with gzip.open(args.out, 'rb') as f:
            same_q = f.read() == buf.getvalue().encode()
    except (FileNotFoundError, OSError, EOFError):
        same_q = False
    if not same_q:
        with gzip.GzipFile(args.out, 'wb', mtime=0) as f:
            f.write(buf.getvalue().encode())

    lang_stats = collections.OrderedDict()
    for lang in sorted({s['language'] for s in all_snips}):
        ls = [s for s in all_snips if s['language'] == lang]
        lang_stats[lang] = dict(
            repos=len({s['repo'] for s in ls}), snippets=len(ls),
            documented=sum(bool(s.get('doc')) for s in ls),
            eligible_queries=sum(1 for s, _ in cands if s['language'] == lang),
            after_group_cap=per_lang_avail[lang],
            queries=sum(1 for s, _ in out if s['language'] == lang))
    summary = dict(seed=args.seed, per_language=args.per_language,
                   cap_per_group=args.cap_per_group, snippets=len(all_snips),
                   strip_docs_snippets=len(st_snips), strip_docs_missing=sum(missing.values()),
                   strip_docs_docs_left=docs_left, queries=len(out),
                   languages=lang_stats, repos=stats)
    # written only when its content changes, so a rebuild of the same corpus
    # leaves the committed file (and its mtime) alone
    stats_path = os.path.join(HERE, 'corpus-stats.json')
    text = json.dumps(summary, indent=1)
    try:
        with open(stats_path) as f:
            same = f.read() == text
    except FileNotFoundError:
        same = False
    if not same:
        with open(stats_path, 'w') as f:
            f.write(text)
    log('corpus-stats.json %s' % ('unchanged' if same else 'written'))
    for lang, v in lang_stats.items():
        log('%-10s %s' % (lang, v))
    log('%d queries -> %s (%s)' % (len(out), args.out, 'unchanged' if same_q else 'written'))


if __name__ == '__main__':
    main()
