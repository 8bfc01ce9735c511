"""bench/quality/ood/snippet_tree.py — a source tree of one file per code
snippet (Stack Overflow answers, CoSQA functions), parsed the way
codevec-load parses a user's repository, and the keys that tell whether two
snippets are the same code.

codevec-load stores functions, methods, classes and types; a file of plain
statements (most Stack Overflow answers: `sorted(d.items(), key=...)`)
gives it nothing to store.  So a snippet the loader finds no definition in
is written again inside one function of a fixed name,

    def snippet():
        <the snippet, every line indented by four spaces>

the same two words for every such snippet, so they favour none of them.  A
snippet with definitions is written as it is; all the loader's snippets of
its file count as the answer.  Used by fetch.py / build-kit.sh (the StaQC
benchmark's tree) and tools/train-model/build-pairs.py (StaQC training
pairs), so both see the same text for the same answer.

  write_tree(items, root, loader)  items: [(name, code)]; writes
        root/<name>.py, wraps the ones without a definition, returns
        {name: [loader snippets of that file, first line first]}
        (names whose file still parses to nothing are absent)
  text_key(embed_text)             the key of an embed_text (see below)
  query_key(query)                 a query lower-cased, punctuation removed
"""

import hashlib
import json
import os
import re
import subprocess

WRAP_HEAD = 'def snippet():\n'


def _jsonl(loader, root, *opts):
    p = subprocess.run([loader, '--jsonl', '-q', *opts, root], check=False,
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    if p.returncode not in (0, 1):
        raise RuntimeError('%s --jsonl %s failed (%d)' % (loader, root, p.returncode))
    return [json.loads(l) for l in p.stdout.splitlines() if l.strip()]


def wrap(code):
    """code as the body of `def snippet():` (four spaces before every
    non-empty line; tabs stay inside the indentation, where Python and
    tree-sitter read them as before)."""
    body = '\n'.join(('    ' + l) if l.strip() else '' for l in code.split('\n'))
    return WRAP_HEAD + body.rstrip() + '\n'


def by_file(snips):
    out = {}
    for s in snips:
        out.setdefault(s['path'][:-3], []).append(s)
    for v in out.values():
        v.sort(key=lambda s: (s['start_line'], -s['end_line']))
    return out


def write_tree(items, root, loader, *opts):
    """Write every (name, code) as root/name.py, parse with the loader
    (extra opts such as --strip-docs), wrap those without a definition,
    parse those again; {name: [snippets]} (see the module doc)."""
    os.makedirs(root, exist_ok=True)
    for name, code in items:
        with open(os.path.join(root, name + '.py'), 'w', encoding='utf-8') as f:
            f.write(code.rstrip('\n') + '\n')
    parsed = by_file(_jsonl(loader, root, *opts))
    bare = [(n, c) for n, c in items if n not in parsed]
    for name, code in bare:
        with open(os.path.join(root, name + '.py'), 'w', encoding='utf-8') as f:
            f.write(wrap(code))
    if bare:
        parsed = by_file(_jsonl(loader, root, *opts))
    return parsed


def text_key(embed_text):
    """The same code, whatever file or name it was stored under: an
    embed_text less its first two lines (the qualified name's words and the
    qualified name, which hold the file's module name), whitespace
    collapsed, lower-cased, its first 300 characters, hashed.  Both sides
    must come from the same loader options (build-pairs uses --strip-docs)."""
    body = embed_text.split('\n', 2)[2] if embed_text.count('\n') >= 2 else embed_text
    body = re.sub(r'\s+', ' ', body).strip().lower()[:300]
    return hashlib.sha1(body.encode()).hexdigest()


def query_key(q):
    return re.sub(r'\W+', ' ', q.lower()).strip()
