#!/usr/bin/env bash
# bench/gpuembed/loader.sh — codevec-load end to end on the CUDA host
# (test/gpu/setup.sh's server, the loader from the kit): parse, store and
# embed a large real tree, the transformers package the host's PyTorch
# install ships (Python, ~3,000 files), with embed() on the GPU service.
#   bash bench/gpuembed/loader.sh [EMBED_BATCH ...]   (default: 64 1024)
# Prints the loader's summary and RESULT lines: snippets, wall seconds,
# snippets/s for the whole run and for the embedding pass alone.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
batches="${*:-64 1024}"
set --		# setup.sh takes server settings as arguments: none here
source "$top/test/gpu/setup.sh"
tree=$(python3 -c 'import os, transformers; print(os.path.dirname(transformers.__file__))')
echo "tree: $tree ($(find "$tree" -name '*.py' | wc -l) .py files, $(du -sh "$tree" | cut -f1))"
for b in "$batches"; do
	for b1 in $b; do
		psql -qX -c "DROP DATABASE IF EXISTS load_$b1" -c "CREATE DATABASE load_$b1" >/dev/null
		s0=$(date +%s%N)
		PGOPTIONS="-c codevec.device=cuda" codevec-load -d "load_$b1" --no-progress --no-embed --repo transformers "$tree" 2>&1 | tail -4
		t1=$(date +%s%N)
		PGOPTIONS="-c codevec.device=cuda" codevec-load -d "load_$b1" --no-progress --embed-only --embed-batch="$b1" --repo transformers 2>&1 | tail -3
		t2=$(date +%s%N)
		n=$(psql -qAtX -d "load_$b1" -c "SELECT count(*) FILTER (WHERE emb IS NOT NULL) || ' ' || count(*) FROM code.snippets")
		echo "RESULT,loader,embed_batch=$b1,embedded=${n% *},snippets=${n#* },parse_store_s=$(( (t1 - s0) / 1000000 ))e-3,embed_s=$(( (t2 - t1) / 1000000 ))e-3,total_snippets_per_s=$(( ${n% *} * 1000000000 / (t2 - s0) )),embed_snippets_per_s=$(( ${n% *} * 1000000000 / (t2 - t1) ))"
	done
done
psql -X -c "SELECT models_loaded, memory_used_mb, requests, batches, round(mean_batch::numeric, 1) AS mean_batch, max_batch FROM codevec_gpu_status()"
