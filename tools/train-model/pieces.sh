#!/usr/bin/env bash
# tools/train-model/pieces.sh — files too large for one GPU call's carry,
# sent over several calls and put back together on the device machine.
#
# A call to the lent machine sends the working tree (tracked files, 54 MB
# since models/code-minilm-l6 is in the tree) plus the carried paths, 64 MiB
# in all, and keeps ignored paths it was sent earlier while the machine is
# held.  So the base model (45 MB), the pairs (20+ MB) and the eval kit
# (12 MB) go as pieces of at most MAXBYTES, each piece folder in its own
# call, and `join` checks and reassembles them there:
#
#   here:   bash tools/train-model/pieces.sh split .gpukit/pc 9000000 FILE...
#           -> .gpukit/pc/p01 ... pNN (chunks; p01 also holds MANIFEST:
#              name, size, sha256 of each whole file and its chunks in order)
#   there:  one call per folder, carry [".gpukit/pc/pNN"], command `true`
#           (or any command); then, in a later call:
#           bash tools/train-model/pieces.sh join .gpukit/pc DEST
#           -> DEST/<file name> for every FILE, sha256-checked; exit 1 and
#              the missing chunk or wrong file named otherwise
#
# A FILE that is a folder is sent as NAME.tar (join unpacks it into DEST).
set -euo pipefail

cmd=${1:?usage: pieces.sh split OUTDIR MAXBYTES FILE... | pieces.sh join OUTDIR DEST}
shift
case $cmd in
split)
	out=$1 max=$2
	shift 2
	rm -rf "$out"
	mkdir -p "$out/.work"
	n=1 used=0
	folder() { printf '%s/p%02d' "$out" "$n"; }
	mkdir -p "$(folder)"
	: > "$out/.work/MANIFEST"
	for f in "$@"; do
		name=$(basename "$f")
		src=$f
		if [ -d "$f" ]; then
			name=$name.tar
			tar -C "$(dirname "$f")" -cf "$out/.work/$name" "$(basename "$f")"
			src=$out/.work/$name
		fi
		size=$(stat -c %s "$src")
		sum=$(sha256sum < "$src" | cut -d' ' -f1)
		split -b "$max" -d -a 3 "$src" "$out/.work/$name.chunk-"
		chunks=()
		for c in "$out/.work/$name".chunk-*; do
			cs=$(stat -c %s "$c")
			if [ $((used + cs)) -gt "$max" ] && [ "$used" -gt 0 ]; then
				n=$((n + 1)) used=0
				mkdir -p "$(folder)"
			fi
			mv "$c" "$(folder)/"
			used=$((used + cs))
			chunks+=("p$(printf %02d "$n")/$(basename "$c")")
		done
		echo "$name $size $sum ${chunks[*]}" >> "$out/.work/MANIFEST"
	done
	mv "$out/.work/MANIFEST" "$out/p01/MANIFEST"
	rm -rf "$out/.work"
	for d in "$out"/p*; do
		echo "$d $(du -sb "$d" | cut -f1) bytes"
	done
	;;
join)
	out=$1 dest=$2
	[ -f "$out/p01/MANIFEST" ] || { echo "pieces.sh: $out/p01/MANIFEST missing (p01 not sent)" >&2; exit 1; }
	mkdir -p "$dest"
	while read -r name size sum chunks; do
		for c in $chunks; do
			[ -f "$out/$c" ] || { echo "pieces.sh: $out/$c missing (its folder not sent)" >&2; exit 1; }
		done
		# shellcheck disable=SC2086  # the chunk list is words
		(cd "$out" && cat $chunks) > "$dest/$name"
		got=$(sha256sum < "$dest/$name" | cut -d' ' -f1)
		if [ "$got" != "$sum" ] || [ "$(stat -c %s "$dest/$name")" != "$size" ]; then
			echo "pieces.sh: $name: sha256 $got, expected $sum" >&2
			exit 1
		fi
		case $name in *.tar) tar -C "$dest" -xf "$dest/$name" && rm "$dest/$name" ;; esac
		echo "pieces.sh: $dest/${name%.tar} ok ($size bytes, sha256 $sum)"
	done < "$out/p01/MANIFEST"
	;;
*)
	sed -n '2,22p' "$0"
	exit 2
	;;
esac
