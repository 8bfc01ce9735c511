#!/usr/bin/env bash
# test/gpu/make-ref.sh — on the development machine (no GPU): the reference
# embeddings test/gpu/embed.sh compares the GPU against on 10,000 real
# snippets. Parses the Python standard library Debian installs
# (/usr/lib/python3.11) with codevec-load --jsonl, samples 10,000 snippets
# (seed 5), embeds their embed_text with embed(text[]) under
# codevec.device = cpu, codevec.cpu_precision = fp32 and codevec.model = 'all-MiniLM-L6-v2' (the CPU fp32
# path, all-MiniLM-L6-v2's original fp32 weights as `make model-base`
# installs them; named, since the default is now the shipped code-minilm-l6
# while test/gpu/setup.sh makes all-MiniLM-L6-v2 the GPU host's default) on
# a throwaway cluster, and writes
# .gpukit/ref/{snippets.tsv,ref.npy} (ids + texts as COPY text; the vectors
# as float16, which moves a cosine by < 1e-6: enough for a >= 0.9999 check,
# and half the transfer). About 5 minutes on 2 cores.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
ref=$top/.gpukit/ref
mkdir -p "$ref"
python3 -c "import numpy" 2>/dev/null || python3 -m pip install -q numpy
"$top/loaders/codevec-load" --jsonl /usr/lib/python3.11 2>/dev/null | python3 -c "
import sys, json, random
rows = sorted((json.loads(l) for l in sys.stdin), key=lambda r: (r['path'], r['start_line'], r['qualified_name']))
random.seed(5)
with open('$ref/snippets.tsv', 'w') as f:
    for i, r in enumerate(random.sample(rows, 10000)):
        t = r['embed_text'].replace('\\\\', '\\\\\\\\').replace('\t', '\\\\t').replace('\n', '\\\\n').replace('\r', '\\\\r')
        f.write(f'{i + 1}\t{t}\n')
"
cluster=$(mktemp -d /tmp/codevec-ref.XXXXXX); chmod 755 "$cluster"
trap 'bash "$top/test/cluster.sh" stop "$cluster" >/dev/null 2>&1; rm -rf "$cluster"' EXIT
port=5541; while [ -e "/tmp/.s.PGSQL.$port" ]; do port=$((port + 1)); done
eval "$(bash "$top/test/cluster.sh" start "$cluster" "$port")"
psql -qX -c "CREATE EXTENSION codevec" -c "CREATE TABLE s (id int, t text)" -c "\\copy s FROM '$ref/snippets.tsv'" \
	-c "CREATE TABLE r (id int, e codevec(384))"
for part in 0 1; do		# one backend per core
	psql -qX -c "SET codevec.device = cpu" -c "SET codevec.cpu_precision = fp32" -c "SET codevec.model = 'all-MiniLM-L6-v2'" -c "INSERT INTO r SELECT id, e FROM unnest(ARRAY(SELECT id FROM s WHERE id % 2 = $part ORDER BY id), embed(ARRAY(SELECT t FROM s WHERE id % 2 = $part ORDER BY id))) AS u(id, e)" &
done
wait
psql -qAtX -c "SELECT e FROM r ORDER BY id" | python3 -c "
import sys, numpy as np
v = np.array([[float(x) for x in l.strip()[1:-1].split(',')] for l in sys.stdin], dtype=np.float32)
assert v.shape == (10000, 384), v.shape
np.save('$ref/ref.npy', v.astype(np.float16))
"
ls -la "$ref"
