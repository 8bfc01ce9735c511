#!/usr/bin/env python3
"""bench/quality/embcache.py — keep embeddings across benchmark databases.

Embedding the corpus is the slow step (CPU encoder, about 20-30 snippets/s on
the 2-core development machine), and every database of the benchmark (the full
corpus, each embed_text variant, a reload after a loader change) embeds many
of the same texts.  The cache maps md5(embed_text) to the vector embed() gave,
per model (sha256 of model.safetensors), codevec.max_tokens and the CPU
encoder's precision (codevec.cpu_precision), in
$CODEVEC_QUALITY_CACHE/emb/<sha12>-t<max_tokens>[-int8].tsv (append-only
text; no suffix for fp32, the only precision before int8 existed, so older
cache files keep their meaning).

  embcache.py import   fill code.snippets.emb IS NULL rows whose embed_text
                       is in the cache (prints how many)
  embcache.py export   append the database's embeddings missing from the cache

Connection from libpq's PG* variables.  Only vectors the same model with the
same max_tokens and precision produced are ever reused, so results equal a
fresh embed() on the CPU (vectors made by the GPU service are not told
apart: use a cache folder of their own for them).
"""

import os
import sys

import psycopg

CACHE = os.environ.get('CODEVEC_QUALITY_CACHE', '/tmp/codevec-quality')


def cache_file(cur):
    cur.execute("SELECT sha256 FROM codevec_model_info()")
    sha = cur.fetchone()[0]
    cur.execute("SHOW codevec.max_tokens")
    mt = cur.fetchone()[0]
    cur.execute("SELECT current_setting('codevec.cpu_precision', true)")
    prec = cur.fetchone()[0] or 'fp32'    # an extension from before int8: fp32
    d = os.path.join(CACHE, 'emb')
    os.makedirs(d, exist_ok=True)
    return os.path.join(d, '%s-t%s%s.tsv' % (sha[:12], mt, '' if prec == 'fp32' else '-' + prec))


def load(cur, path):
    cur.execute("CREATE TEMP TABLE IF NOT EXISTS embcache (h text, emb text)")
    cur.execute("TRUNCATE embcache")
    if os.path.exists(path):
        with open(path, 'rb') as f, cur.copy("COPY embcache FROM STDIN") as cp:
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                cp.write(b)
    cur.execute("CREATE INDEX ON embcache (h)")
    cur.execute("ANALYZE embcache")


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ''
    if cmd not in ('import', 'export'):
        sys.exit('usage: embcache.py import|export')
    with psycopg.connect(autocommit=True) as conn, conn.cursor() as cur:
        path = cache_file(cur)
        load(cur, path)
        if cmd == 'import':
            cur.execute("""UPDATE code.snippets s SET emb = c.emb::codevec
                           FROM (SELECT DISTINCT ON (h) h, emb FROM embcache) c
                           WHERE s.emb IS NULL AND c.h = md5(s.embed_text)""")
            print('%d embeddings from %s' % (cur.rowcount, path))
        else:
            n = 0
            with open(path, 'a') as f:
                cur.execute("""SELECT DISTINCT ON (md5(s.embed_text)) md5(s.embed_text), s.emb::text
                               FROM code.snippets s WHERE s.emb IS NOT NULL AND NOT EXISTS (
                                 SELECT 1 FROM embcache c WHERE c.h = md5(s.embed_text))""")
                for h, e in cur:
                    f.write('%s\t%s\n' % (h, e))
                    n += 1
            print('%d embeddings added to %s' % (n, path))


if __name__ == '__main__':
    main()
