#!/usr/bin/env bash
# tools/train-model/pack-out.sh — make a device call's $OUT fit what comes back.
#
#   bash tools/train-model/pack-out.sh DIR [MAXFILES] [MAXBYTES]
#
# A call to the lent GPU machine returns at most MAXFILES files (default 8)
# of at most MAXBYTES each (default 16000000, under its 16 MiB limit) from
# $OUT, no more than two folders down, each named in letters, digits, '.',
# '_' and '-' alone; anything else is left out silently, so a run that
# writes a log per step loses some.
# Run this as the call's last command, on $OUT:
#
#   - If every file already comes back, nothing changes.
#   - Otherwise the MAXFILES - 1 largest files that can come back as they
#     are stay; every other file (smaller ones, oddly named ones, ones too
#     deep) goes into DIR/rest.tar.xz, relative paths kept, and is removed.
#     Back here: `tar -xJf rest.tar.xz` beside the others.
#
# Prints what it kept and packed.  Exit 0 when everything will come back;
# 3 when rest.tar.xz itself is over MAXBYTES (the files are still there,
# packed; split them or write less); 2 on usage errors.
set -euo pipefail

dir=${1:?usage: pack-out.sh DIR [MAXFILES] [MAXBYTES]}
maxfiles=${2:-8}
maxbytes=${3:-16000000}
[ -d "$dir" ] || { echo "pack-out.sh: $dir is not a folder" >&2; exit 2; }
case "$maxfiles$maxbytes" in *[!0-9]*) echo "pack-out.sh: MAXFILES and MAXBYTES are numbers" >&2; exit 2 ;; esac
[ "$maxfiles" -ge 2 ] || { echo "pack-out.sh: MAXFILES must be at least 2" >&2; exit 2; }
cd "$dir"

# a path comes back as it is when it has at most two folders above it and
# every part is a plain name
returnable() {
	local p=$1
	[[ $p =~ ^([A-Za-z0-9._-]+/){0,2}[A-Za-z0-9._-]+$ ]] && [[ ! $p =~ (^|/)\.\.?(/|$) ]]
}
# "size<TAB>path" of every regular file, largest first; those that could
# come back as they are, in that order, and the others
mapfile -d '' -t files < <(find . -type f -printf '%s\t%P\0' | LC_ALL=C sort -z -t$'\t' -k1,1nr -k2,2)
# (a rest.tar.xz of an earlier pass comes back too, but is never kept
# beside the new one: it goes into it)
fits=() rest=() old=()
for f in "${files[@]}"; do
	size=${f%%$'\t'*} path=${f#*$'\t'}
	if [ "$path" = rest.tar.xz ] && [ "$size" -le "$maxbytes" ]; then
		old=("$path")
	elif [ "$size" -le "$maxbytes" ] && returnable "$path"; then
		fits+=("$path")
	else
		rest+=("$path")
	fi
done
if [ "${#rest[@]}" = 0 ] && [ $((${#fits[@]} + ${#old[@]})) -le "$maxfiles" ]; then
	echo "pack-out.sh: $((${#fits[@]} + ${#old[@]})) files, all come back as they are"
	exit 0
fi
# the MAXFILES - 1 largest stay, beside the tar
keep=("${fits[@]:0:maxfiles-1}")
rest+=("${fits[@]:maxfiles-1}" "${old[@]}")
list=$(mktemp)
printf '%s\0' "${rest[@]}" > "$list"
tar -cJf rest.tar.xz.tmp --no-recursion --null -T "$list"
rm -f "$list"
for p in "${rest[@]}"; do rm -f -- "$p"; done
mv rest.tar.xz.tmp rest.tar.xz
find . -mindepth 1 -type d -empty -delete
echo "pack-out.sh: kept ${#keep[@]} (${keep[*]}); packed ${#rest[@]} into rest.tar.xz ($(stat -c %s rest.tar.xz) bytes)"
if [ "$(stat -c %s rest.tar.xz)" -gt "$maxbytes" ]; then
	echo "pack-out.sh: rest.tar.xz is over $maxbytes bytes and will not come back" >&2
	exit 3
fi
