#!/usr/bin/env python3
"""astfacts.py -- the loader's Python snippets against Python's own ast.

    astfacts.py ROOT JSONL

For every .py file under ROOT (paths and module names relative to it), ast (the interpreter's parser) gives the
expected snippets: each FunctionDef, AsyncFunctionDef and ClassDef, its
qualified name (module path from the file path, then the enclosing classes
and functions), its kind (class; method when directly in a class body;
function otherwise), its lines (from the first decorator to end_lineno)
and its docstring (ast.get_docstring, cleaned like inspect.cleandoc).  The
loader's snippets of those files (JSONL, --jsonl output run on ROOT)
must be exactly these.  A file with a deliberate syntax error is parsed
with the broken definition's lines blanked (listed in BROKEN); the loader
keeps the definition, so it is checked against the hand-written line range.
Exits 1 on any difference.
"""
import ast
import json
import os
import sys

# file -> (first, last) lines of a deliberately broken definition
BROKEN = {"shapes.py": (32, 33)}


def module_name(rel):
    parts = rel[:-3].split("/")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def expected(root, rel):
    with open(os.path.join(root, rel), encoding="utf-8") as f:
        lines = f.read().split("\n")
    facts = set()
    if rel in BROKEN:
        a, b = BROKEN[rel]
        for i in range(a - 1, b):
            lines[i] = ""
    tree = ast.parse("\n".join(lines))

    def walk(node, scope, in_class):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                q = ".".join(x for x in scope + [child.name] if x)
                if isinstance(child, ast.ClassDef):
                    kind = "class"
                else:
                    kind = "method" if in_class else "function"
                start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                facts.add((rel, kind, q, start, child.end_lineno,
                           ast.get_docstring(child, clean=True)))
                walk(child, scope + [child.name], isinstance(child, ast.ClassDef))
            else:
                walk(child, scope, in_class)
    walk(tree, [module_name(rel)], False)
    return facts


def main():
    root, jsonl = sys.argv[1], sys.argv[2]
    want = set()
    broken = set()
    for dirpath, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                want |= expected(root, rel)
                if rel in BROKEN:
                    broken.add((rel,) + BROKEN[rel])
    got = set()
    with open(jsonl, encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            if d["language"] != "python":
                continue
            fact = (d["path"], d["kind"], d["qualified_name"], d["start_line"], d["end_line"], d["doc"])
            if (d["path"], d["start_line"], d["end_line"]) in broken:
                continue            # the definition ast cannot parse
            got.add(fact)
    for f in sorted(want - got, key=str):
        print("#   missing (ast has it): %r" % (f,))
    for f in sorted(got - want, key=str):
        print("#   extra (ast has no such): %r" % (f,))
    print("# %d Python definitions from ast, %d from the loader" % (len(want), len(got)))
    sys.exit(0 if want == got and want else 1)


if __name__ == "__main__":
    main()
