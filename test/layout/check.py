#!/usr/bin/env python3
"""test/layout/check.py -- the source layout rules of issue 26, as TAP.

    python3 test/layout/check.py [ROOT]

1. No circle between .c units, in loaders/ and in src/.  Two kinds of edge
   from unit a.c to unit b.c:
   - include: a.c includes b.h (directly or through another project
     header) and b.c exists: b.h is b.c's header;
   - symbol:  a.o references a global symbol (function or variable) that
     b.o defines (nm of the built objects: what the compiler saw, whatever
     header declared it; a shared header such as loaders/cvl.h or
     src/gpuivf.h hides these from an include check).
   One exception, by rule rather than by name: an index access method's
   handler fills its IndexAmRoutine with the callbacks' addresses
   (amroutine->ambuild = gpuivfbuild): those references are the AM's table
   of callbacks, like PostgreSQL's rmgrlist.h, not calls, and are not edges.
   A circle is a strongly connected component of two or more units; each is
   reported with the symbols or headers that make its edges.
2. No source file in src/, loaders/, cuda/ or serve/ over 1,500 lines
   unless LONG_FILES below names it and a paragraph of the README given
   there names it with its size in lines (where the reason is written).
3. No function in src/*.c over 150 lines (the body, from its opening brace
   at the start of a line to the matching closing one) unless LONG_FUNCTIONS
   names it and src/README.md names it with its reason.  CUDA kernels
   (cuda/) are outside this rule.
4. Every relative link of the tracked Markdown files ([text](path),
   ![alt](path); not in code) names a file or folder that exists, and a
   link into a Markdown file with #anchor names one of its headings
   (GitHub's slugs: lower case, punctuation dropped, spaces as hyphens).
   The README front page points into doc/ and the folders' READMEs, so a
   moved page must take its links along.

The objects must be built and newer than their sources (make CUDA=0,
make -C loaders; test/run.sh builds before it runs the suites).  Prints the
project headers each .c includes as # lines.  Ends with "N passed,
N failed" and exits 1 on a failure.
"""
import os
import re
import subprocess
import sys

ROOT = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else
                       os.path.join(os.path.dirname(__file__), '..', '..'))

MAX_FILE_LINES = 1500
MAX_FUNCTION_LINES = 150

# file -> the README that says why it is longer than MAX_FILE_LINES
LONG_FILES = {
}
# function -> its file (src/README.md says why each stays whole)
LONG_FUNCTIONS = {
    'codevec_bm25_topk': 'src/bm25.c',
    'codevec_bm25_blocks_topk': 'src/bm25bmp.c',
    'cv_encode': 'src/encoder.c',
}
# the units and where their objects are
DIRS = [('loaders', 'loaders/build'), ('src', 'src')]

passed = failed = 0


def ok(cond, what, notes=()):
    global passed, failed
    n = passed + failed + 1
    if cond:
        passed += 1
        print('ok %d - %s' % (n, what))
    else:
        failed += 1
        print('not ok %d - %s' % (n, what))
    for line in notes:
        print('#   ' + line)


def read(path):
    with open(os.path.join(ROOT, path), encoding='utf-8', errors='replace') as f:
        return f.read()


def project_includes(d, name, seen=None):
    """Project headers (in d/) that file d/name includes, directly or not."""
    seen = set() if seen is None else seen
    for h in re.findall(r'^\s*#\s*include\s+"([^"]+)"', read(os.path.join(d, name)), re.M):
        if h not in seen and os.path.exists(os.path.join(ROOT, d, h)):
            seen.add(h)
            project_includes(d, h, seen)
    return seen


def direct_includes(d, name):
    return [h for h in re.findall(r'^\s*#\s*include\s+"([^"]+)"', read(os.path.join(d, name)), re.M)
            if os.path.exists(os.path.join(ROOT, d, h))]


def nm_symbols(obj):
    """(defined, undefined) global symbols of an object file."""
    out = subprocess.run(['nm', obj], capture_output=True, text=True, check=True).stdout
    defined, undefined = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == 'U':
            undefined.add(parts[1])
        elif len(parts) == 3 and parts[1] in 'TDBRCGSV':
            defined.add(parts[2])
    return defined, undefined


def am_table_entries(text):
    """Callbacks whose addresses an AM handler stores in its IndexAmRoutine."""
    return set(re.findall(r'->am\w+\s*=\s*([A-Za-z_]\w*)\s*;', text))


def circles(edges, units):
    """Strongly connected components of two or more units (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(units):
        if v not in index:
            visit(v)
    return out


# ---------------------------------------------------------------- 1. circles
for d, objdir in DIRS:
    units = sorted(f[:-2] for f in os.listdir(os.path.join(ROOT, d)) if f.endswith('.c'))
    missing, stale = [], []
    for u in units:
        o = os.path.join(ROOT, objdir, u + '.o')
        if not os.path.exists(o):
            missing.append(u + '.o')
        elif os.path.getmtime(o) < os.path.getmtime(os.path.join(ROOT, d, u + '.c')):
            stale.append(u + '.o')
    ok(not missing and not stale,
       '%s/: every unit built, objects newer than their sources (%d units)' % (d, len(units)),
       ['missing in %s: %s' % (objdir, ' '.join(missing))] * bool(missing) +
       ['older than the source: %s (run make)' % ' '.join(stale)] * bool(stale))
    if missing:
        continue

    # which headers each unit includes (listed), and the include edges
    edges, why = {}, {}
    for u in units:
        direct = direct_includes(d, u + '.c')
        allh = project_includes(d, u + '.c')
        extra = sorted(allh - set(direct))
        print('# %s/%s.c includes %s%s' % (d, u, ' '.join(direct) or '(no project header)',
                                          ' (and through them %s)' % ' '.join(extra) if extra else ''))
        for h in allh:
            b = h[:-2] if h.endswith('.h') else None
            if b and b != u and b in units:
                edges.setdefault(u, set()).add(b)
                why.setdefault((u, b), set()).add('includes ' + h)

    # symbol edges
    syms = {u: nm_symbols(os.path.join(ROOT, objdir, u + '.o')) for u in units}
    owner = {}
    for u in units:
        for s in syms[u][0]:
            owner.setdefault(s, u)
    nsym = 0
    for u in units:
        table = am_table_entries(read(os.path.join(d, u + '.c')))
        for s in syms[u][1]:
            b = owner.get(s)
            if b is None or b == u or s in table:
                continue
            edges.setdefault(u, set()).add(b)
            why.setdefault((u, b), set()).add(s)
            nsym += 1
    found = circles(edges, units)
    notes = []
    for comp in found:
        notes.append('circle: ' + ' '.join(c + '.c' for c in comp))
        for a in comp:
            for b in comp:
                if (a, b) in why:
                    notes.append('  %s.c -> %s.c: %s' % (a, b, ', '.join(sorted(why[(a, b)])[:6])))
    ok(not found, '%s/: no circle between .c units (%d edges from %d symbol references and the includes)'
       % (d, sum(len(v) for v in edges.values()), nsym), notes)
    mutual = sorted('%s.c <-> %s.c' % (a, b) for a in edges for b in edges[a] if a < b and a in edges.get(b, ()))
    ok(not mutual, '%s/: no two .c units depend on each other' % d, mutual)

# ------------------------------------------------------------- 2. file sizes
long_files = []
for d in ('src', 'loaders', 'cuda', 'serve'):
    for f in sorted(os.listdir(os.path.join(ROOT, d))):
        if f.endswith(('.c', '.h', '.cu', '.cuh', '.js', '.html', '.css')):
            path = d + '/' + f
            n = read(path).count('\n')
            if n > MAX_FILE_LINES:
                long_files.append((path, n))
bad = [p for p, n in long_files if p not in LONG_FILES]
ok(not bad, 'no source file over %d lines but the ones with a written reason (%s)'
   % (MAX_FILE_LINES, ', '.join('%s %d' % pn for pn in long_files) or 'none'),
   ['%s: %d lines, no reason written' % pn for pn in long_files if pn[0] in bad])
for path, readme in sorted(LONG_FILES.items()):
    n = read(path).count('\n') if os.path.exists(os.path.join(ROOT, path)) else 0
    # a paragraph of the README that names the file with its size in lines
    named = any(os.path.basename(path) in para and re.search(r'\d[\d,]* lines', para)
                for para in re.split(r'\n\s*\n', read(readme)))
    ok(n <= MAX_FILE_LINES or named, '%s (%d lines): its reason is written in %s (a paragraph naming it'
       ' with its size in lines)' % (path, n, readme))


# --------------------------------------------------------- 3. function sizes
def functions(text):
    """(name, body lines) of each function definition in PostgreSQL style."""
    lines = text.split('\n')
    out, i = [], 0
    while i < len(lines):
        if lines[i] == '{' and i > 0 and lines[i - 1].rstrip().endswith(')'):
            name = None
            for j in range(i - 1, max(i - 15, -1), -1):
                m = re.match(r'^(?:[A-Za-z_][\w\s\*]*?[\s\*])?([A-Za-z_]\w*)\(', lines[j])
                if m and not lines[j][0].isspace():
                    name = m.group(1)
                    break
            k = i + 1
            while k < len(lines) and not lines[k].startswith('}'):
                k += 1
            out.append((name or '?', k - i + 1))
            i = k
        i += 1
    return out


src_readme = read('src/README.md')
long_funcs = []
for f in sorted(os.listdir(os.path.join(ROOT, 'src'))):
    if f.endswith('.c'):
        for name, n in functions(read('src/' + f)):
            if n > MAX_FUNCTION_LINES:
                long_funcs.append(('src/' + f, name, n))
bad = [(p, nm, n) for p, nm, n in long_funcs if LONG_FUNCTIONS.get(nm) != p or nm not in src_readme]
ok(not bad, 'no function in src/ over %d lines but those src/README.md explains (%s)'
   % (MAX_FUNCTION_LINES, ', '.join('%s %d' % (nm, n) for p, nm, n in long_funcs) or 'none'),
   ['%s: %s, %d lines' % t for t in bad])


# ------------------------------------------------------- 4. Markdown links
def markdown_files():
    """The tracked .md files (git ls-files), or every one under ROOT."""
    try:
        out = subprocess.run(['git', '-C', ROOT, 'ls-files', '-z', '*.md'], capture_output=True, check=True)
        return sorted(f for f in out.stdout.decode().split('\0') if f)
    except (OSError, subprocess.CalledProcessError):
        return sorted(os.path.relpath(os.path.join(d, f), ROOT) for d, _, fs in os.walk(ROOT)
                      for f in fs if f.endswith('.md') and '/.git' not in d)


def prose(text):
    """text without fenced code blocks and inline code spans."""
    text = re.sub(r'^(```|~~~).*?^\1[^\n]*$', '', text, flags=re.M | re.S)
    return re.sub(r'(`+)(?!`).*?(?<!`)\1(?!`)', '', text, flags=re.S)


def slugs(text):
    """GitHub's anchors of the headings of a Markdown text."""
    out = set()
    for line in prose(text).split('\n'):
        m = re.match(r'^#{1,6}\s+(.*?)\s*#*\s*$', line)
        if m:
            out.add(re.sub(r'[^\w\- ]', '', m.group(1).replace('`', '').lower()).replace(' ', '-'))
    return out


md_files = markdown_files()
broken = []
for f in md_files:
    text = read(f)
    for target in re.findall(r'\]\(([^)\s]+)(?:\s+"[^"]*")?\)', prose(text)):
        if re.match(r'[A-Za-z][A-Za-z0-9+.-]*:', target):
            continue				# https:, mailto: ...
        path, _, anchor = target.partition('#')
        full = os.path.normpath(os.path.join(ROOT, os.path.dirname(f), path)) if path else os.path.join(ROOT, f)
        if not os.path.exists(full):
            broken.append('%s: %s (no such file)' % (f, target))
        elif anchor and full.endswith('.md') and anchor.lower() not in slugs(read(os.path.relpath(full, ROOT))):
            broken.append('%s: %s (no such heading)' % (f, target))
ok(md_files and not broken, 'every relative link of the %d tracked Markdown files names a file that exists'
   ' (and a heading, with #anchor)' % len(md_files), broken)

print('%d passed, %d failed' % (passed, failed))
sys.exit(1 if failed else 0)
