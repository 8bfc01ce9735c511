#!/usr/bin/env python3
"""bench/keyword/firststeps.py -- what each piece of a keyword code.search
costs the first time in a new session (issue 21, item 3).

    firststeps.py [SESSIONS]        (default 15; the PG* environment variables)

In each of SESSIONS fresh connections it runs the pieces below in this
order, each once, and reads the backend's CPU time around each from
/proc/PID/schedstat (the server must run on this machine): every piece
pays what the ones before it did not already load (the library, plpgsql,
the text search cache, the relation and catalog cache entries of the
tables, the compile of each plpgsql function and the plans of its
statements).  The last two rows are code.search keyword mode then, with
all of that loaded, and a second call of it: their difference is what
remains of the first call's cost once the pieces are warm (the parse and
plan of code.search's inlined statement).  Prints the median CPU ms of
each piece.
"""
import statistics, sys

import psycopg

STEPS = [
    ("library: codevec_dims", "SELECT codevec_dims('[1,2]'::codevec)"),
    ("plpgsql: an empty DO", "DO $$ BEGIN END $$"),
    ("text search: to_tsvector", "SELECT to_tsvector('codevec_code', 'read a file')"),
    ("snippets, files, repos joined", "SELECT count(*) FROM code.snippets s JOIN code.files f ON f.id = s.file_id"
     " JOIN code.repos r ON r.id = f.repo_id WHERE s.id < 0"),
    ("code.bm25_params", "SELECT * FROM code.bm25_params"),
    ("code.bm25_query", "SELECT * FROM code.bm25_query('parse the headers of a message')"),
    ("codevec_bm25_blocks_topk", "SELECT * FROM codevec_bm25_blocks_topk((SELECT terms FROM code.bm25_query('open a file')),"
     " (SELECT idf FROM code.bm25_query('open a file')), 10, 'code.bm25_postings_idx',"
     " (SELECT block_shift FROM code.bm25_params))"),
    ("code.bm25_filtered", "SELECT * FROM code.bm25_filtered('send data over a socket', 10)"),
    ("code.search_check", "SELECT code.search_check('q', 10, 'keyword', 5, 100, 0.35)"),
    ("code.search keyword", "SELECT id FROM code.search('read the configuration', k => 10, mode => 'keyword')"),
    ("code.search keyword, again", "SELECT id FROM code.search('write a log record', k => 10, mode => 'keyword')"),
]


def cpu_ns(pid):
    with open("/proc/%d/schedstat" % pid) as f:
        return int(f.read().split()[0])


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    res = {name: [] for name, _ in STEPS}
    for _ in range(n):
        with psycopg.connect(autocommit=True) as c:
            pid = c.execute("SELECT pg_backend_pid()").fetchone()[0]
            for name, sql in STEPS:
                a = cpu_ns(pid)
                cur = c.execute(sql)
                if cur.description:
                    cur.fetchall()
                res[name].append((cpu_ns(pid) - a) / 1e6)
    for name, _ in STEPS:
        print("%-32s %6.2f ms CPU (median of %d sessions)" % (name, statistics.median(res[name]), n))


if __name__ == "__main__":
    main()
