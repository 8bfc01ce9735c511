#!/usr/bin/env python3
"""bench/loader/anchor.py -- the pipeline a user would write instead of
codevec-load (issue 23, item 4): chunk source files, embed the chunks with
sentence-transformers on the GPU in fp16 (batch 256), COPY rows with their
vectors into PostgreSQL.  The anchor that codevec-load is measured against
on the same tree, in the same run (bench/loader/gpu.sh).

    python3 anchor.py --model DIR [-d CONNINFO] [--batch 256] PATH...

Files: the suffixes codevec-load parses (C, C++, Python, JavaScript,
TypeScript, Go, Rust, Java; loaders/lang.c).  Chunks: for .py files, with
the tree-sitter Python bindings (`tree_sitter` and `tree_sitter_python`
importable) every function and class definition is a chunk, as
codevec-load cuts them; without them (the CUDA host has no package
registry) a plain chunker: a chunk starts at every line whose first word
is `def`, `async def` or `class` (at any indentation) and runs to the next
such line; the text before the first one is dropped, as codevec-load
keeps no module-level code either.  Every other file (the brace
languages): a chunk runs from the first non-blank line after the last
chunk to the next line that starts with `}` in its first column (the end
of a top-level function, struct or class in the usual layouts), kept when
it has a `{`; what follows the last such line is dropped.  What is
embedded is each chunk's first 500 bytes (codevec-load's
--embed-max-bytes), 256 tokens at most (codevec.max_tokens).

Rows go to anchor.chunks(id, path, start_line, end_line, code, emb
codevec(384)) with a binary COPY (the vectors packed by numpy, as a user
who knows COPY would write it; psycopg 3, else psycopg2, else psql's
\\copy through a pipe).  The three phases run one after another, as a plain
script does; each is timed.  Prints RESULT lines: chunks, seconds per
phase and in all, chunks per second.
"""
import argparse
import os
import re
import struct
import subprocess
import sys
import time

EXTS = (".c", ".h", ".cc", ".cpp", ".cxx", ".c++", ".C", ".hh", ".hpp", ".hxx", ".h++",
        ".ipp", ".py", ".pyi", ".js", ".mjs", ".cjs", ".jsx", ".ts", ".mts", ".cts", ".tsx",
        ".go", ".rs", ".java")
PY_EXTS = (".py", ".pyi")
DEF = re.compile(rb"^[ \t]*(?:async[ \t]+def|def|class)[ \t]+\w")


def files_under(paths):
    """Every .py/.pyi file under the paths, sorted, symlinks not followed."""
    out = []
    for p in paths:
        if os.path.isfile(p):
            out.append(p)
            continue
        for d, dirs, names in os.walk(p):
            dirs[:] = sorted(x for x in dirs if x != ".git" and not os.path.islink(os.path.join(d, x)))
            for n in sorted(names):
                f = os.path.join(d, n)
                if n.endswith(EXTS) and not os.path.islink(f):
                    out.append(f)
    return out


def chunks_plain(path, data):
    """(path, start_line, end_line, text) for each def/class run of lines."""
    lines = data.split(b"\n")
    starts = [i for i, l in enumerate(lines) if DEF.match(l)]
    out = []
    for k, s in enumerate(starts):
        e = starts[k + 1] if k + 1 < len(starts) else len(lines)
        while e > s + 1 and not lines[e - 1].strip():
            e -= 1
        text = b"\n".join(lines[s:e]).decode("utf-8", "replace")
        out.append((path, s + 1, e, text))
    return out


def chunks_braces(path, data):
    """(path, start_line, end_line, text) for each run of lines up to a
    line that starts with a closing brace in column 0."""
    lines = data.split(b"\n")
    out = []
    s = None
    for i, l in enumerate(lines):
        if s is None:
            if l.strip():
                s = i
            else:
                continue
        if l.startswith(b"}"):
            text = b"\n".join(lines[s:i + 1])
            if b"{" in text:
                out.append((path, s + 1, i + 1, text.decode("utf-8", "replace")))
            s = None
    return out


def make_ts_chunker():
    """A tree-sitter chunker, or None when the bindings are not installed."""
    try:
        import tree_sitter
        import tree_sitter_python
    except ImportError:
        return None
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_python.language()))
    kinds = {"function_definition", "class_definition", "decorated_definition"}

    def chunks(path, data):
        out = []
        stack = [parser.parse(data).root_node]
        while stack:
            n = stack.pop()
            if n.type in kinds:
                out.append((path, n.start_point[0] + 1, n.end_point[0] + 1,
                            data[n.start_byte:n.end_byte].decode("utf-8", "replace")))
                if n.type == "decorated_definition":
                    continue
            stack.extend(reversed(n.children))
        return out

    return chunks


def cut(text, limit=500):
    """The first limit bytes of text, on a character boundary."""
    b = text.encode("utf-8")
    return text if len(b) <= limit else b[:limit].decode("utf-8", "ignore")


def copy_rows(conninfo, rows, vectors):
    """COPY the rows and their vectors into anchor.chunks in PostgreSQL's
    binary COPY format; returns the driver used."""
    import numpy as np
    ddl = ("DROP SCHEMA IF EXISTS anchor CASCADE; CREATE SCHEMA anchor; "
           "CREATE TABLE anchor.chunks (id bigserial PRIMARY KEY, path text, "
           "start_line int, end_line int, code text, emb codevec(%d));" % vectors.shape[1])
    copy = "COPY anchor.chunks (path, start_line, end_line, code, emb) FROM STDIN WITH (FORMAT binary)"
    dim = vectors.shape[1]
    vb = np.ascontiguousarray(vectors, dtype=">f4")
    # a codevec's binary form: int16 dim, int16 unused, dim float4 (big-endian)
    vhead = struct.pack(">ihh", 4 + 4 * dim, dim, 0)

    def chunks():
        yield b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
        buf = []
        for i, (path, s, e, text) in enumerate(rows):
            p = path.encode("utf-8", "replace").replace(b"\x00", b"")
            c = text.replace("\x00", "").encode("utf-8")
            buf.append(b"".join((struct.pack(">hi", 5, len(p)), p, struct.pack(">iiiii", 4, s, 4, e, len(c)),
                                 c, vhead, vb[i].tobytes())))
            if len(buf) == 1000:
                yield b"".join(buf)
                buf = []
        buf.append(struct.pack(">h", -1))
        yield b"".join(buf)
    try:
        import psycopg
        with psycopg.connect(conninfo or "") as conn:
            conn.execute(ddl)
            with conn.cursor() as cur, cur.copy(copy) as cp:
                for b in chunks():
                    cp.write(b)
        return "psycopg %s, binary COPY" % psycopg.__version__
    except ImportError:
        pass
    try:
        import io
        import psycopg2
        conn = psycopg2.connect(conninfo or "")
        with conn, conn.cursor() as cur:
            cur.execute(ddl)
            cur.copy_expert(copy, io.BytesIO(b"".join(chunks())))
        conn.close()
        return "psycopg2 %s, binary COPY" % psycopg2.__version__
    except ImportError:
        pass
    args = ["psql", "-qX", "-v", "ON_ERROR_STOP=1"] + (["-d", conninfo] if conninfo else [])
    subprocess.run(args + ["-c", ddl], check=True, stdout=subprocess.DEVNULL)
    p = subprocess.Popen(args + ["-c", "\\copy anchor.chunks (path, start_line, end_line, "
                                  "code, emb) FROM STDIN WITH (FORMAT binary)"], stdin=subprocess.PIPE)
    for b in chunks():
        p.stdin.write(b)
    p.stdin.close()
    if p.wait() != 0:
        sys.exit("psql \\copy failed")
    return "psql \\copy, binary"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, help="sentence-transformers model folder")
    ap.add_argument("-d", "--dbname", default=None, help="libpq conninfo (default: PG* variables)")
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("paths", nargs="+")
    a = ap.parse_args()

    t0 = time.time()
    ts = make_ts_chunker()
    chunker = ts or chunks_plain
    rows = []
    for f in files_under(a.paths):
        try:
            with open(f, "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        rows.extend((chunker if f.endswith(PY_EXTS) else chunks_braces)(f, data))
    texts = [cut(r[3]) for r in rows]
    t1 = time.time()

    import torch
    from sentence_transformers import SentenceTransformer
    model = SentenceTransformer(a.model, device="cuda").half().eval()
    model.max_seq_length = a.max_tokens
    model.encode(texts[:a.batch], batch_size=a.batch)     # load and warm up, untimed
    torch.cuda.synchronize()
    t2 = time.time()
    vecs = model.encode(texts, batch_size=a.batch, convert_to_numpy=True,
                        normalize_embeddings=True)
    torch.cuda.synchronize()
    t3 = time.time()
    driver = copy_rows(a.dbname, rows, vecs.astype("float32"))
    t4 = time.time()
    total = (t1 - t0) + (t3 - t2) + (t4 - t3)
    how = ("tree-sitter" if ts else "plain def/class chunks") + " for .py, closing-brace chunks for the rest"
    print("anchor: %d chunks (%s) from %d paths; embedded with %s batch %d fp16, %d tokens; "
          "stored with %s" % (len(rows), how, len(a.paths), a.model, a.batch, a.max_tokens, driver))
    print("RESULT,anchor,chunks=%d,chunk_s=%.2f,model_load_s=%.2f,embed_s=%.2f,copy_s=%.2f,"
          "total_s=%.2f,embed_per_s=%.0f,total_per_s=%.0f"
          % (len(rows), t1 - t0, t2 - t1, t3 - t2, t4 - t3, total,
             len(rows) / max(t3 - t2, 1e-9), len(rows) / max(total, 1e-9)))


if __name__ == "__main__":
    main()
