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

It also counts the questions that share a word (3+ letters, camelCase and
snake_case split, stop words out) with an answer's own name: the writer's
check that questions describe behaviour rather than repeat identifiers
(domain words a user would type anyway, like XML, PATH or null, remain).

Columns of questions.tsv: qid, repo, language, split (dev/test: alternating
within each repository in the order written, fixed once committed),
question, answers ('path|qualified_name' joined by ';').

  resolve.py [--check]    --check: compare with the committed file instead of writing
"""

import collections
import os
import re
import sys

import psycopg

HERE = os.path.dirname(os.path.abspath(__file__))


STOP = {'from', 'with', 'the', 'and', 'for', 'all', 'any', 'get', 'set', 'new', 'one', 'two',
        'its', 'into', 'has', 'not', 'are', 'was'}


def words(s):
    """Lower-case words of 3+ letters, camelCase and snake_case split, stop words out."""
    s = re.sub(r'([a-z])([A-Z])', r'\1 \2', s)
    return {w.lower() for w in re.split(r'[^A-Za-z0-9]+', s) if len(w) >= 3} - STOP


def main():
    conn = psycopg.connect()
    cur = conn.cursor()
    rows, bad = [], 0
    per_repo = collections.Counter()
    overlap = collections.Counter()
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
        name_words = set().union(*[words(a.split('|', 1)[1].split('.')[-1].split('::')[-1])
                                   for a in answers]) if answers else set()
        if name_words & words(question):
            overlap[repo] += 1
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
    print('questions sharing a word (3+ letters, not a stop word) with an answer\'s name: %d (%s)' % (
        sum(overlap.values()), ', '.join('%s %d' % kv for kv in sorted(overlap.items()))))


if __name__ == '__main__':
    main()
