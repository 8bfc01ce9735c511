#!/usr/bin/env python3
"""bench/quality/variants.py — what to embed: embed_text variants on a sub-corpus.

Embedding the whole corpus once per variant costs too much CPU time on the
development machine (about 20 snippets/s), so the study runs on a stratified
sub-corpus: SUB_QUERIES queries per language sampled (fixed seed) from
queries.tsv.gz, and their targets plus random other snippets of the same
language up to SUB_SNIPPETS per language.  For each variant a database
qv_<name> in the benchmark cluster gets the corpus loaded with
`codevec-load --strip-docs --embed-fields=... --embed-max-bytes=...
--embed-words=...`
(codevec.max_tokens set on the database where the variant says), everything
outside the sub-corpus deleted, the rest embedded, and then eval.py's plain-SQL
lists computed for the sub-queries (vector and keyword lists of the
sub-corpus; hybrid is fused offline exactly as code.search fuses).

Vectors of texts embedded before (the default variant's are all in the full
run) come from embcache.py's cache, keyed by md5(embed_text), model and
max_tokens, so they equal a fresh embed().

Usage: python3 variants.py [--only NAME,...]
Writes $CODEVEC_QUALITY_CACHE/variants/<name>.lists.json.gz and
sub-queries.tsv.gz there.
"""

import argparse
import gzip
import os
import random
import subprocess
import sys
import time

import psycopg

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from eval import read_queries, log   # noqa: E402

CACHE = os.environ.get('CODEVEC_QUALITY_CACHE', '/tmp/codevec-quality')
SUB_QUERIES = int(os.environ.get('SUB_QUERIES', 125))      # per language
SUB_SNIPPETS = int(os.environ.get('SUB_SNIPPETS', 1250))   # per language
SEED = 7

# name, --embed-fields, --embed-max-bytes, codevec.max_tokens[, --embed-words
# (default none)]
VARIANTS = [
    ('path_kind_name_sig_body_1000', 'path,kind,name,signature,body', 1000, 256),
    ('name_sig_body_1000', 'name,signature,body', 1000, 256),
    ('body_1000', 'body', 1000, 256),
    ('name_sig_1000', 'name,signature', 1000, 256),
    ('path_kind_name_sig_body_500', 'path,kind,name,signature,body', 500, 256),
    ('path_kind_name_sig_body_2000', 'path,kind,name,signature,body', 2000, 256),
    ('path_kind_name_sig_body_2000_t512', 'path,kind,name,signature,body', 2000, 512),
    ('name_sig_body_500', 'name,signature,body', 500, 256),
    ('name_sig_body_250', 'name,signature,body', 250, 256),
    ('kind_name_sig_body_500', 'kind,name,signature,body', 500, 256),
    # the loader's default fields since the study above (doc is empty here)
    ('name_sig_doc_body_1000', 'name,signature,doc,body', 1000, 256),
    ('name_sig_doc_body_500', 'name,signature,doc,body', 500, 256),
    # identifiers as words (--embed-words), the default fields
    ('words_name_500', 'name,signature,doc,body', 500, 256, 'name'),
    ('words_all_500', 'name,signature,doc,body', 500, 256, 'all'),
    ('words_name_all_500', 'name,signature,doc,body', 500, 256, 'name+all'),
    ('words_bare_500', 'name,signature,doc,body', 500, 256, 'bare'),
    ('words_name_all_1000', 'name,signature,doc,body', 1000, 256, 'name+all'),
    ('words_name_all_750', 'name,signature,doc,body', 750, 256, 'name+all'),
    ('words_name_all_nosig_500', 'name,doc,body', 500, 256, 'name+all'),
    ('words_name_all_300', 'name,signature,doc,body', 300, 256, 'name+all'),
    ('words_name_all_500_t128', 'name,signature,doc,body', 500, 128, 'name+all'),
]
DEFAULT = VARIANTS[0][0]


def find_loader():
    spec = __import__('importlib.util').util.spec_from_file_location(
        'build_set', os.path.join(HERE, 'build-set.py'))
    m = __import__('importlib.util').util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m.LOADER


def pick(queries, all_keys):
    """The sub-queries and the sub-corpus keys, stratified by language."""
    rng = random.Random(SEED)
    subq, keys = [], set()
    for lang in sorted({q['language'] for q in queries}):
        qs = [q for q in queries if q['language'] == lang]
        rng.shuffle(qs)
        qs = sorted(qs[:SUB_QUERIES], key=lambda q: q['qid'])
        subq.extend(qs)
        mine = {(q['repo'], q['path'], q['qualified_name'], q['start_line']) for q in qs}
        rest = sorted(k for k, l in all_keys.items() if l == lang and k not in mine)
        rng.shuffle(rest)
        keys |= mine | set(rest[:SUB_SNIPPETS - len(mine)])
    return subq, keys


def dbname(v):
    return os.environ.get('VARIANTS_DB_PREFIX', 'qv_') + v


def psql_conn(db):
    return psycopg.connect(dbname=db, autocommit=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--only', default='')
    ap.add_argument('--queries', default=os.path.join(HERE, 'queries.tsv.gz'))
    args = ap.parse_args()
    L = find_loader()
    corpus = os.path.join(CACHE, 'corpus')
    outdir = os.environ.get('VARIANTS_DIR', os.path.join(CACHE, 'variants'))
    os.makedirs(outdir, exist_ok=True)
    queries = read_queries(args.queries)

    # every snippet key of the corpus, from the loader itself
    import json
    all_keys = {}
    for repo in sorted(os.listdir(corpus)):
        p = subprocess.run([L, '--jsonl', '-q', '--strip-docs', os.path.join(corpus, repo)],
                           stdout=subprocess.PIPE, check=True)
        for l in p.stdout.splitlines():
            s = json.loads(l)
            all_keys[(repo, s['path'], s['qualified_name'], s['start_line'])] = s['language']
    subq, keys = pick(queries, all_keys)
    sq = os.path.join(outdir, 'sub-queries.tsv.gz')
    with gzip.open(sq, 'wt', encoding='utf-8') as f:
        f.write('qid\tlanguage\trepo\tpath\tqualified_name\tstart_line\tkind\tquery\n')
        for q in subq:
            f.write('\t'.join(str(q[c]) for c in ('qid', 'language', 'repo', 'path',
                                                  'qualified_name', 'start_line', 'kind',
                                                  'query')) + '\n')
    log('sub-corpus: %d queries, %d snippets' % (len(subq), len(keys)))

    only = set(args.only.split(',')) if args.only else None
    for name, fields, nbytes, max_tokens, *extra in VARIANTS:
        words = extra[0] if extra else 'none'     # the loader's default is name+all
        if only and name not in only:
            continue
        out = os.path.join(outdir, name + '.lists.json.gz')
        if os.path.exists(out):
            log('%s: done before (%s)' % (name, out))
            continue
        db = dbname(name)
        t0 = time.time()
        with psycopg.connect(dbname='postgres', autocommit=True) as c:
            c.execute('DROP DATABASE IF EXISTS %s' % db)
            c.execute('CREATE DATABASE %s' % db)
            c.execute('ALTER DATABASE %s SET codevec.max_tokens = %d' % (db, max_tokens))
        env = dict(os.environ, PGDATABASE=db)
        for repo in sorted(os.listdir(corpus)):
            subprocess.run([L, '-q', '--strip-docs', '--no-embed', '--repo', repo,
                            '--embed-fields=' + fields, '--embed-max-bytes=%d' % nbytes]
                           + ['--embed-words=' + words]
                           + [os.path.join(corpus, repo)], env=env, check=True)
        with psql_conn(db) as c, c.cursor() as cur:
            cur.execute("CREATE TEMP TABLE keep (repo text, path text, qualified_name text,"
                        " start_line int)")
            with cur.copy("COPY keep FROM STDIN") as cp:
                for k in sorted(keys):
                    cp.write_row(k)
            cur.execute("""DELETE FROM code.snippets s USING code.files f, code.repos r
                           WHERE f.id = s.file_id AND r.id = f.repo_id AND NOT EXISTS (
                             SELECT 1 FROM keep k WHERE k.repo = r.name AND k.path = f.path
                               AND k.qualified_name = s.qualified_name
                               AND k.start_line = s.start_line)""")
            cur.execute("SELECT count(*), avg(octet_length(embed_text)) FROM code.snippets")
            n, avgb = cur.fetchone()
            log('%s: %d snippets kept, embed_text %.0f bytes on average' % (name, n, avgb))
        # vectors of identical embed_text (the default variant: all of them)
        # come from the embedding cache the full run filled
        r = subprocess.run([sys.executable, os.path.join(HERE, 'embcache.py'), 'import'],
                           env=env, check=True, stdout=subprocess.PIPE, text=True)
        copied = int(r.stdout.split()[0])
        log('%s: %d embeddings from the cache' % (name, copied))
        te = time.time()
        for attempt in range(5):
            with psql_conn(db) as c, c.cursor() as cur:
                cur.execute("""SELECT DISTINCT r.name FROM code.snippets s
                               JOIN code.files f ON f.id = s.file_id
                               JOIN code.repos r ON r.id = f.repo_id WHERE s.emb IS NULL""")
                todo = sorted(x[0] for x in cur.fetchall())
            if not todo:
                break
            for repo in todo:
                if subprocess.run([L, '--embed-only', '-q', '--repo', repo], env=env).returncode:
                    time.sleep(30)     # a shared install being rebuilt: try again
        subprocess.run([sys.executable, os.path.join(HERE, 'embcache.py'), 'export'],
                       env=env, check=True, stdout=subprocess.DEVNULL)
        embed_s = time.time() - te
        subprocess.run([sys.executable, os.path.join(HERE, 'eval.py'), 'lists', '--depth', '400',
                        '--queries', sq, '--out', out + '.tmp'], env=env, check=True)
        # record the variant's settings in its lists file
        with gzip.open(out + '.tmp', 'rt') as f:
            d = json.load(f)
        d['variant'] = dict(name=name, fields=fields, max_bytes=nbytes, max_tokens=max_tokens,
                            words=words,
                            snippets=n, avg_embed_text_bytes=float(avgb),
                            embedded=n - copied, embed_seconds=embed_s,
                            total_seconds=time.time() - t0)
        with gzip.open(out, 'wt') as f:
            json.dump(d, f)
        os.unlink(out + '.tmp')
        log('%s: embedded %d in %.0f s, total %.0f s' % (name, n - copied, embed_s,
                                                         time.time() - t0))


if __name__ == '__main__':
    main()
