#!/usr/bin/env python3
"""bench/quality/handwritten/resolve.py — turn questions.src (written by
hand: repo, question, answer names) into questions.tsv, the committed set.

Each answer name is looked up in a database loaded by build-corpus.sh +
codevec-load (libpq PG* variables): every function/method/constructor
snippet of that repository whose qualified_name equals the name (and whose
path equals the given one, for 'path|name'). A name that matches nothing
stops the script (exit 1) with the name shown, so a question never points
at code that is not there. Overloads and per-platform variants of one name
in one file are all answers.

Columns of questions.tsv: qid, repo, language, split (dev/test: alternating
within each repository in the order written, fixed once committed),
question, answers ('path|qualified_name' joined by ';').

  resolve.py [--check]    --check: compare with the committed file instead of writing
"""

import collections
import os
import sys

import psycopg

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    conn = psycopg.connect()
    cur = conn.cursor()
    rows, bad = [], 0
    per_repo = collections.Counter()
    for line in open(os.path.join(HERE, 'questions.src'), encoding='utf-8'):
        if line.startswith('#') or not line.strip():
            continue
        repo, question, names = line.rstrip('\n').split('\t')
        answers, lang = [], None
        for name in names.split(';'):
            path = None
            if '|' in name:
                path, name = name.split('|', 1)
            cur.execute("""SELECT DISTINCT f.path, s.qualified_name, f.language
                           FROM code.snippets s JOIN code.files f ON f.id = s.file_id
                           JOIN code.repos r ON r.id = f.repo_id
                           WHERE r.name = %s AND s.qualified_name = %s
                             AND s.kind IN ('function', 'method', 'constructor')
                             AND (%s::text IS NULL OR f.path = %s) ORDER BY 1""",
                        (repo, name, path, path))
            got = cur.fetchall()
            if not got:
                print('no snippet: %s %s%s' % (repo, (path + '|') if path else '', name))
                bad += 1
            for p, q, l in got:
                answers.append('%s|%s' % (p, q))
                lang = lang or l
        n = per_repo[repo]
        per_repo[repo] += 1
        rows.append((repo, lang, 'dev' if n % 2 == 0 else 'test', question, ';'.join(answers)))
    if bad:
        sys.exit('%d answer names not found' % bad)
    out = ['qid\trepo\tlanguage\tsplit\tquestion\tanswers\n']
    for i, r in enumerate(rows, 1):
        out.append('%d\t%s\n' % (i, '\t'.join(r)))
    path = os.path.join(HERE, 'questions.tsv')
    if '--check' in sys.argv:
        same = open(path, encoding='utf-8').read() == ''.join(out)
        print('questions.tsv %s' % ('matches the database' if same else 'DIFFERS'))
        sys.exit(0 if same else 1)
    open(path, 'w', encoding='utf-8').write(''.join(out))
    print('%d questions (%s) -> %s' % (len(rows), ', '.join(
        '%s %d' % kv for kv in sorted(per_repo.items())), path))


if __name__ == '__main__':
    main()
