#!/usr/bin/env bash
# bench/keyword/carry-linux.sh -- Debian's linux-source-6.1 to the CUDA host
# in pieces that each fit one device call's transfer (64 MiB with the
# tree), for gpu.sh's Linux runs (issue 21).
#
#   bash bench/keyword/carry-linux.sh pack [TARBALL]   # here (the Debian machine)
#   bash bench/keyword/carry-linux.sh unpack DIR       # there, once per piece
#
# pack: the files of TARBALL (default /usr/src/linux-source-6.1.tar.xz,
# `apt-get install linux-source-6.1`) whose names the loader parses
# (the suffixes of loaders/lang.c's table: 55,586 files of 6.1.192-3)
# in chunks of 1,000, each xz -9, grouped in order into .lx1/ .lx2/ .lx3/
# ... (git-ignored) so that no group passes its cap: FIRST_MB (default 23)
# for .lx1, which travels with .gpukit, REST_MB (default 52) for the
# others, which travel with the tree alone. Prints each group's size.
# unpack: every chunk of DIR into /tmp/linux (the tree is then
# /tmp/linux/linux-source-6.1), 16 at a time; prints the files there.
#
# One call each, back to back on the warm machine: .gpukit + .lx1, then
# .lx2, .lx3 (the model untracked while they travel: tree + piece must fit),
# then the model's call that loads /tmp/linux/linux-source-6.1 and runs
# gpu.sh (README.md, "The Linux tree on an H100 host at 69f2bb5").
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)

pack() {
	local tarball=${1:-/usr/src/linux-source-6.1.tar.xz}
	local work f cap group=1 used=0 size suffixes
	[ -f "$tarball" ] || { echo "carry-linux.sh: no $tarball (apt-get install linux-source-6.1)" >&2; exit 1; }
	work=$(mktemp -d /tmp/carry-linux.XXXXXX)
	tar xJf "$tarball" -C "$work"
	# the suffixes the loader parses, from its own table (loaders/lang.c,
	# Suffixes; a name that starts with its only dot has none, as there)
	suffixes=$(sed -n '/Suffixes\[\] = {/,/^};/p' "$top/loaders/lang.c" | grep -o '"\.[^"]*"' | tr -d '"')
	[ -n "$suffixes" ] || { echo "carry-linux.sh: no Suffixes table in loaders/lang.c" >&2; exit 1; }
	(cd "$work" && find . -type f | sed 's#^\./##' | awk -v s="$suffixes" '
		BEGIN { n = split(s, a, "\n"); for (i = 1; i <= n; i++) ok[a[i]] = 1 }
		{ b = $0; sub(/.*\//, "", b); d = match(b, /\.[^.]*$/); if (d > 1 && (substr(b, d) in ok)) print }' |
		LC_ALL=C sort > list)
	echo "$(wc -l < "$work/list") files the loader parses"
	(cd "$work" && split -l 1000 -d -a 3 list chunk. &&
		printf '%s\0' chunk.* | xargs -0 -P "$(nproc)" -I{} sh -c 'tar cf - -T "$1" | xz -9 -T1 > "$1.tar.xz"' _ {})
	rm -rf "$top"/.lx[0-9]*
	mkdir -p "$top/.lx1"
	for f in "$work"/chunk.*.tar.xz; do
		size=$(stat -c %s "$f")
		if [ "$group" = 1 ]; then cap=$((${FIRST_MB:-23} * 1000000)); else cap=$((${REST_MB:-52} * 1000000)); fi
		if [ "$used" -gt 0 ] && [ $((used + size)) -gt "$cap" ]; then
			group=$((group + 1)); used=0; mkdir -p "$top/.lx$group"
		fi
		mv "$f" "$top/.lx$group/"; used=$((used + size))
	done
	rm -rf "$work"
	du -sb "$top"/.lx[0-9]*
}

unpack() {
	[ -d "${1:-}" ] || { echo "carry-linux.sh unpack: no folder ${1:-}" >&2; exit 1; }
	mkdir -p /tmp/linux
	printf '%s\0' "$1"/*.tar.xz | xargs -0 -P 16 -I{} sh -c 'xz -dc "$1" | tar xf - -C /tmp/linux' _ {}
	echo "files in /tmp/linux: $(find /tmp/linux -type f | wc -l)"
}

case "${1:-}" in
pack) shift; pack "$@" ;;
unpack) shift; unpack "$@" ;;
*) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
