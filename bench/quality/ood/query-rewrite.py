#!/usr/bin/env python3
"""bench/quality/ood/query-rewrite.py — rewrites of the keyword list's
question, measured on the out-of-distribution sets.

    query-rewrite.py [--json OUT.json] > report.md

Web questions name the language ("python check if file exists": 494 of
CoSQA's 500 dev questions, 82 of StaQC's 192) and say in words what code
abbreviates ("dictionary", "string", "length" for dict, str, len). Two
rewrites of the question that only code.search's keyword list would see
(the vector list keeps the question as typed), both written before
anything was measured:

  drop-language   the names of programming languages taken out (python,
                  java, javascript, typescript, golang, rust, c++, cpp)
  abbreviations   each word that code commonly abbreviates followed by
                  its abbreviations (ABBREVIATIONS below: string -> str,
                  dictionary -> dict, ...); the OR of code.keyword_query
                  then matches either

For every question: code.search's vector and keyword lists (depth 100),
the keyword list again for each rewrite, fused as code.search fuses them
(oodlists.fuse, checked against code.search's hybrid for the first 20
questions of each database); MRR@10 per (benchmark, language) cell and
half, and each rewrite's hybrid against the question as typed with a
paired bootstrap 95% CI (choose.py's diff_ci). A rewrite would be adopted
only if the dev halves show a gain with its CI above 0 and hybrid stays
at or above vector on every benchmark there.

Databases and connection: as bm25-fields.py (oodlists.py).
"""
import argparse
import json
import re

import psycopg

from choose import diff_ci, macro
from oodlists import cells, check_fusion, fuse, groups, lists, only, rr

LANGUAGES = re.compile(r'(?<![\w+])(python|java|javascript|typescript|golang|rust|c\+\+|cpp)(?![\w+])', re.I)
ABBREVIATIONS = {
    'string': 'str', 'strings': 'str', 'integer': 'int', 'integers': 'int', 'dictionary': 'dict',
    'dictionaries': 'dict', 'length': 'len', 'number': 'num', 'numbers': 'nums num', 'array': 'arr',
    'arrays': 'arr', 'directory': 'dir', 'directories': 'dirs dir', 'argument': 'arg',
    'arguments': 'args arg', 'parameter': 'param', 'parameters': 'params param',
    'configuration': 'config conf cfg', 'config': 'conf cfg', 'initialize': 'init', 'initialise': 'init',
    'temporary': 'tmp temp', 'message': 'msg', 'messages': 'msgs msg', 'object': 'obj',
    'objects': 'objs obj', 'value': 'val', 'values': 'vals val', 'index': 'idx', 'character': 'char',
    'characters': 'chars char', 'boolean': 'bool', 'function': 'func fn', 'functions': 'funcs func',
    'variable': 'var', 'variables': 'vars var', 'source': 'src', 'destination': 'dst dest',
    'previous': 'prev', 'current': 'cur curr', 'maximum': 'max', 'minimum': 'min', 'command': 'cmd',
    'reference': 'ref', 'request': 'req', 'response': 'resp', 'error': 'err', 'exception': 'exc',
    'iterator': 'iter', 'attribute': 'attr', 'attributes': 'attrs attr', 'environment': 'env',
    'utility': 'util', 'image': 'img', 'password': 'passwd pwd', 'document': 'doc', 'library': 'lib',
    'position': 'pos', 'execute': 'exec', 'random': 'rand', 'address': 'addr', 'buffer': 'buf',
    'column': 'col', 'columns': 'cols col', 'database': 'db', 'element': 'elem',
    'elements': 'elems elem', 'expression': 'expr', 'format': 'fmt', 'information': 'info',
    'regular': 're regex', 'regex': 're', 'sequence': 'seq', 'specification': 'spec',
    'statistics': 'stats', 'synchronize': 'sync', 'timestamp': 'ts', 'milliseconds': 'ms',
    'seconds': 'sec secs', 'second': 'sec', 'delete': 'del', 'remove': 'rm del', 'calculate': 'calc',
    'average': 'avg mean', 'allocate': 'alloc', 'context': 'ctx', 'connection': 'conn', 'count': 'cnt',
    'pointer': 'ptr', 'table': 'tbl', 'window': 'win', 'list': 'lst',
}


def drop_language(q):
    return re.sub(r'\s+', ' ', LANGUAGES.sub(' ', q)).strip() or q


def abbreviations(q):
    extra = [ABBREVIATIONS[w] for w in re.findall(r'[a-z]+', q.lower()) if w in ABBREVIATIONS]
    return q + ' ' + ' '.join(extra) if extra else q


REWRITES = {'drop-language': drop_language, 'abbreviations': abbreviations}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--json')
    a = ap.parse_args()
    rows = []
    for bench, db, group in groups():
        with psycopg.connect(dbname=db, autocommit=True) as conn:
            cur = conn.cursor()
            for n, q in enumerate(sorted(group(conn), key=lambda q: q['qid'])):
                t = set(q['targets'])
                vec, kw = lists(cur, q['query'], 'vector'), lists(cur, q['query'], 'keyword')
                if n < 20:
                    check_fusion(cur, db, q, vec, kw)
                row = dict(benchmark=bench, qid=q['qid'], language=q['language'], split=q['split'],
                           vector=rr(vec, t), keyword=rr(kw, t), hybrid=rr(fuse(vec, kw), t))
                for name, f in REWRITES.items():
                    q1 = f(q['query'])
                    kw1 = lists(cur, q1, 'keyword') if q1 != q['query'] else kw
                    row['changed ' + name] = q1 != q['query']
                    row['keyword ' + name] = rr(kw1, t)
                    row['hybrid ' + name] = rr(fuse(vec, kw1), t)
                rows.append(row)
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(dict(rows=rows), f)
    benches = sorted({r['benchmark'] for r in rows})
    for split in ('dev', 'test'):
        vec, hy = cells(rows, split, 'vector'), cells(rows, split, 'hybrid')
        print('### %s halves: MRR@10 (macro over languages)\n' % split)
        print('| question | ' + ' | '.join('%s: changed, keyword, hybrid (- vector)' % b for b in benches)
              + ' | OOD hybrid macro | vs as typed (95% CI) |')
        print('|---|' + '---|' * len(benches) + '---:|---|')
        for name in [None] + list(REWRITES):
            sfx = '' if name is None else ' ' + name
            kw, h = cells(rows, split, 'keyword' + sfx), cells(rows, split, 'hybrid' + sfx)
            ch = cells(rows, split, 'changed' + sfx) if name else None
            line = ['%s, %.3f, %.3f (%+.3f)' % (
                '—' if ch is None else '%d of %d' % (sum(map(sum, only(ch, b).values())),
                                                    sum(map(len, only(ch, b).values()))),
                macro(only(kw, b)), macro(only(h, b)), macro(only(h, b)) - macro(only(vec, b))) for b in benches]
            print('| %s | %s | %.4f | %s |' % (name or 'as typed', ' | '.join(line), macro(h),
                                               '—' if name is None else '%+.4f (%+.4f..%+.4f)' % diff_ci(h, hy)))
        print()


if __name__ == '__main__':
    main()
