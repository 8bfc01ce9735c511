#!/usr/bin/env python3
"""bench/quality/ood/make-kit.py — the eval kit: everything eval-models.py
needs to score any model folder on every benchmark without PostgreSQL.

For each benchmark database (libpq PG* variables for host/port/user; the
database names below), it writes into one gzip JSON file:
  - every snippet's id and embed_text (what embed() encodes; loaded by
    codevec-load with its defaults), so the GPU step embeds exactly the
    texts code.search's vector mode compares;
  - every query with its split (dev/test), language, target snippet ids
    and its keyword list: the ids of code.search(query, k => DEPTH,
    mode => 'keyword') in order (BM25 when the postings are built, what
    hybrid mode fuses; no embeddings needed);
  - with --verify DB: for that (small, embedded) database also code.search's
    own vector and hybrid top 10 of each query under the installed default
    model, so eval-models.py --verify can check that its vector ranks and
    its fusion are code.search's.

Benchmarks and databases (how run.sh loads them: bench/quality/ood/README.md):
  public   database public: bench/quality's 2,400 queries (docstring first
           sentences; docs stripped from the corpus); dev = odd qids (the
           half BM25 was tuned on), test = even qids
  cosqa    database cosqa: fetch.py's CoSQA retrieval split, one file per
           code-base function (cN.py); target = the file's first snippet
  hand     databases hand_<repo>: handwritten/questions.tsv, one database
           per repository (a user's database holds their repository)
  staqc    database staqc: fetch.py's StaQC split (Stack Overflow titles),
           loaded from the tree `fetch.py staqc --tree DIR` wrote (s<cid>.py
           per snippet); targets = every snippet of the answer's files.
           Only with --only ...,staqc (not obtained on every machine)

  make-kit.py OUT.json.gz [--only public,cosqa,hand,staqc] [--verify DB]
              [--public-db DB] [--public-lists RANKS.json.gz]
              [--keep-from OLDKIT.json.gz]

--public-db names the public benchmark's database (default public; any
database loaded as run.sh load does, e.g. quality_name_signature_doc_body_500_wname_all:
embed_text and the keyword lists do not depend on the model).
--public-lists takes the public queries' keyword lists from a
../fastrank.py ranks file of that same database (the same
code.search(query, k => 100, mode => 'keyword') calls, made there) instead
of running them again; the targets must agree.
--keep-from copies the groups not rebuilt now (not in --only, and verify
when --verify is not given) from an earlier kit, e.g. to rebuild the
public set alone after bench/quality's queries changed.
"""

import argparse
import gzip
import json
import os
import subprocess
import sys
import time

import psycopg

HERE = os.path.dirname(os.path.abspath(__file__))
QUALITY = os.path.dirname(HERE)
CACHE = os.environ.get('CODEVEC_OOD_CACHE', '/tmp/codevec-ood')
DEPTH = 100


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def snippets(cur):
    cur.execute("SELECT id, embed_text FROM code.snippets WHERE embed_text IS NOT NULL ORDER BY id")
    return [list(r) for r in cur.fetchall()]


def keyword_lists(cur, queries):
    t0 = time.time()
    for q in queries:
        cur.execute("SELECT id FROM code.search(%s, k => %s, mode => 'keyword')",
                    (q['query'], DEPTH))
        q['kw'] = [r[0] for r in cur.fetchall()]
    log('  %d keyword lists in %.1f s' % (len(queries), time.time() - t0))


def public_group(conn):
    sys.path.insert(0, QUALITY)
    from eval import read_queries, resolve_targets
    qs = resolve_targets(conn, read_queries(os.path.join(QUALITY, 'queries.tsv.gz')))
    return [dict(qid='p%d' % q['qid'], query=q['query'], language=q['language'],
                 split='dev' if q['qid'] % 2 else 'test', targets=[q['target']]) for q in qs]


def cosqa_group(conn):
    d = json.load(open(os.path.join(CACHE, 'cosqa.json'), encoding='utf-8'))
    cur = conn.cursor()
    cur.execute("""SELECT DISTINCT ON (f.path) f.path, s.id FROM code.snippets s
                   JOIN code.files f ON f.id = s.file_id ORDER BY f.path, s.start_line, s.id""")
    first = dict(cur.fetchall())
    out, missing = [], 0
    for split in ('dev', 'test'):
        for q in d[split]:
            t = [first['c%d.py' % c] for c in q['targets'] if 'c%d.py' % c in first]
            if not t:
                missing += 1
                continue
            out.append(dict(qid='cosqa-%s-%s' % (split, q['qid']), query=q['query'],
                            language='python', split=split, targets=t))
    if missing:
        log('  cosqa: %d queries whose function the loader did not parse, left out' % missing)
    return out


def staqc_group(conn):
    """StaQC's dev (valid) and test questions: every snippet the loader
    made of a target file s<cid>.py is a target (a wrapped snippet gives
    one, an answer with definitions one per definition)."""
    d = json.load(open(os.path.join(CACHE, 'staqc.json'), encoding='utf-8'))
    if d.get('unpinned') and not os.environ.get('CODEVEC_OOD_UNPINNED_OK'):
        sys.exit('staqc.json was made with fetch.py --unpinned (a fixture): no kit from it')
    cur = conn.cursor()
    cur.execute("""SELECT f.path, s.id FROM code.snippets s JOIN code.files f ON f.id = s.file_id
                   ORDER BY s.id""")
    by_file = {}
    for path, sid in cur.fetchall():
        by_file.setdefault(path, []).append(sid)
    out, missing = [], 0
    for split in ('dev', 'test'):
        for q in d[split]:
            t = sorted(x for c in q['targets'] for x in by_file.get('s%d.py' % c, []))
            if not t:
                missing += 1
                continue
            out.append(dict(qid='staqc-%s-%s' % (split, q['qid']), query=q['query'],
                            language='python', split=split, targets=t))
    if missing:
        log('  staqc: %d questions none of whose answers the loader parsed, left out' % missing)
    return out


def hand_group(conn, repo):
    cur = conn.cursor()
    out = []
    for line in list(open(os.path.join(QUALITY, 'handwritten', 'questions.tsv'), encoding='utf-8'))[1:]:
        qid, r, lang, split, question, answers = line.rstrip('\n').split('\t')
        if r != repo:
            continue
        ids = []
        for a in answers.split(';'):
            path, name = a.split('|', 1)
            cur.execute("""SELECT s.id FROM code.snippets s JOIN code.files f ON f.id = s.file_id
                           WHERE f.path = %s AND s.qualified_name = %s""", (path, name))
            ids += [x[0] for x in cur.fetchall()]
        if not ids:
            sys.exit('hand %s: question %s has no answer in the database' % (repo, qid))
        out.append(dict(qid='h%s' % qid, query=question, language=lang, split=split,
                        targets=sorted(set(ids))))
    return out


def connect(db):
    return psycopg.connect(dbname=db, autocommit=True)


def verify_refs(conn, queries):
    """code.search's own vector and hybrid top 10 (installed default model)."""
    cur = conn.cursor()
    for q in queries:
        for mode in ('vector', 'hybrid'):
            cur.execute("SELECT id FROM code.search(%s, k => 10, mode => %s)", (q['query'], mode))
            q['ref_' + mode] = [r[0] for r in cur.fetchall()]
        cur.execute("SHOW codevec.model")
        q['ref_model'] = cur.fetchone()[0]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('out')
    ap.add_argument('--only', default='public,cosqa,hand')
    ap.add_argument('--verify', help='a small embedded database of hand questions (googletest)')
    ap.add_argument('--public-db', default='public', help="the public benchmark's database")
    ap.add_argument('--public-lists', help="fastrank.py's ranks file of --public-db: its keyword lists")
    ap.add_argument('--keep-from', help='an earlier kit: its groups that are not rebuilt now are kept')
    args = ap.parse_args()
    want = args.only.split(',')
    groups = []
    plan = []
    if 'public' in want:
        plan.append(('public', 'public', args.public_db, None))
    if 'cosqa' in want:
        plan.append(('cosqa', 'cosqa', 'cosqa', None))
    if 'staqc' in want:
        plan.append(('staqc', 'staqc', 'staqc', None))
    if 'hand' in want:
        for line in open(os.path.join(QUALITY, 'handwritten', 'manifest.tsv')):
            if not line.startswith('#'):
                repo = line.split('\t')[0]
                plan.append(('hand', 'hand-' + repo, 'hand_' + repo.replace('-', '_'), repo))
    if args.verify:
        plan.append(('verify', 'verify', args.verify, 'googletest'))
    for bench, name, db, repo in plan:
        log('%s (database %s)' % (name, db))
        conn = connect(db)
        if bench == 'public':
            qs = public_group(conn)
        elif bench == 'cosqa':
            qs = cosqa_group(conn)
        elif bench == 'staqc':
            qs = staqc_group(conn)
        elif bench == 'hand':
            qs = hand_group(conn, repo)
        else:
            qs = hand_group_lenient(conn, repo)
        cur = conn.cursor()
        if bench == 'public' and args.public_lists:
            with gzip.open(args.public_lists, 'rt') as f:
                fr = json.load(f)
            assert fr['depth'] == DEPTH, 'ranks file depth %s, not %d' % (fr['depth'], DEPTH)
            byq = {'p%d' % r['qid']: r for r in fr['queries']}
            for q in qs:
                r = byq[q['qid']]
                assert [r['target']] == q['targets'], 'target of %s differs' % q['qid']
                q['kw'] = r['kw']
            log('  keyword lists from %s' % args.public_lists)
        else:
            keyword_lists(cur, qs)
        if bench == 'verify':
            verify_refs(conn, qs)
        sn = snippets(cur)
        log('  %d queries, %d snippets' % (len(qs), len(sn)))
        groups.append(dict(benchmark=bench, name=name, database=db, snippets=sn, queries=qs))
    kept = []
    if args.keep_from:
        with gzip.open(args.keep_from, 'rt', encoding='utf-8') as f:
            old = json.load(f)
        rebuilt = {g['benchmark'] for g in groups}
        kept = [g for g in old['groups'] if g['benchmark'] not in rebuilt]
        log('kept from %s: %s' % (args.keep_from, ', '.join(g['name'] for g in kept)))
        # the kit's order: public, cosqa, staqc, hand-*, verify
        order = ['public', 'cosqa', 'staqc', 'hand', 'verify']
        groups = sorted(groups + kept, key=lambda g: order.index(g['benchmark']))
    commit = subprocess.run(['git', '-C', HERE, 'rev-parse', 'HEAD'], capture_output=True,
                            text=True).stdout.strip()
    kit = dict(created=time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime()), commit=commit,
               depth=DEPTH, max_tokens=256, groups=groups,
               kept_from=dict(kit=os.path.basename(args.keep_from), created=old.get('created'),
                              commit=old.get('commit'), groups=[g['name'] for g in kept])
               if args.keep_from else None)
    with gzip.open(args.out, 'wt', encoding='utf-8') as f:
        json.dump(kit, f)
    log('%s: %d groups, %.1f MB' % (args.out, len(groups), os.path.getsize(args.out) / 1e6))


def hand_group_lenient(conn, repo):
    """Hand questions of REPO whose answers are in this (partial) database."""
    cur = conn.cursor()
    out = []
    for line in list(open(os.path.join(QUALITY, 'handwritten', 'questions.tsv'), encoding='utf-8'))[1:]:
        qid, r, lang, split, question, answers = line.rstrip('\n').split('\t')
        if r != repo:
            continue
        ids = []
        for a in answers.split(';'):
            path, name = a.split('|', 1)
            cur.execute("""SELECT s.id FROM code.snippets s JOIN code.files f ON f.id = s.file_id
                           WHERE f.path = %s AND s.qualified_name = %s""", (path, name))
            ids += [x[0] for x in cur.fetchall()]
        if ids:
            out.append(dict(qid='h%s' % qid, query=question, language=lang, split=split,
                            targets=sorted(set(ids))))
    return out


if __name__ == '__main__':
    main()
