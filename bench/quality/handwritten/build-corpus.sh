#!/bin/bash
# bench/quality/handwritten/build-corpus.sh — unpack the five repositories
# the hand-written questions are about, at the versions in manifest.tsv.
#
#   bash build-corpus.sh [CACHE]      (default $CODEVEC_OOD_CACHE or /tmp/codevec-ood)
#
# Each row's .deb is taken from CACHE/dl, /var/cache/apt/archives, or
# fetched with `apt-get download PACKAGE=VERSION` (Debian 12's archive;
# security updates drop old versions from the mirror, then take the file
# from snapshot.debian.org), its sha256 checked against the manifest
# (a mismatch stops with exit 1), and the tree written to CACHE/hand/REPO:
# path_in_deb is a directory, a .tar.xz (subtree is the path inside it) or a
# .zip (subtree is the folder inside it); exclude names directories dropped
# anywhere in the tree. Documentation is kept (these are questions about
# real code as it is shipped; nothing is stripped).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${1:-${CODEVEC_OOD_CACHE:-/tmp/codevec-ood}}
mkdir -p "$cache/dl" "$cache/hand"
grep -v '^#' "$here/manifest.tsv" | while IFS=$'\t' read -r repo lang pkg ver sha inpath subtree exclude; do
	out=$cache/hand/$repo
	if [ -f "$out/.done" ] && [ "$(cat "$out/.done")" = "$sha" ]; then
		echo "$repo: present"; continue
	fi
	fver=${ver#*:}
	deb=$(ls "$cache/dl/${pkg}_${fver}_"*.deb /var/cache/apt/archives/"${pkg}_${fver//:/%3a}_"*.deb 2>/dev/null | head -1 || true)
	if [ -z "$deb" ]; then
		(cd "$cache/dl" && apt-get download -q "$pkg=$ver" >/dev/null 2>&1) || {
			echo "$repo: apt-get download $pkg=$ver failed" >&2; exit 1; }
		deb=$(ls "$cache/dl/${pkg}_"*.deb | head -1)
	fi
	got=$(sha256sum "$deb" | cut -c1-64)
	[ "$got" = "$sha" ] || { echo "$repo: $deb sha256 $got, manifest $sha" >&2; exit 1; }
	stage=$(mktemp -d "$cache/stage.XXXX")
	dpkg-deb -x "$deb" "$stage"
	rm -rf "$out"; mkdir -p "$out"
	src=$stage/$inpath
	case "$inpath" in
	*.tar.xz) tar -xJf "$src" -C "$stage" "$subtree"; cp -a "$stage/$subtree/." "$out/" ;;
	*.zip)    (cd "$stage" && unzip -q "$src" "$subtree/*"); cp -a "$stage/$subtree/." "$out/" ;;
	*)        cp -a "$src/$subtree/." "$out/" ;;
	esac
	rm -rf "$stage"
	if [ "$exclude" != "-" ]; then
		for d in ${exclude//,/ }; do
			find "$out" -depth -type d -name "$d" -exec rm -rf {} +
		done
	fi
	echo "$sha" > "$out/.done"
	echo "$repo: $(find "$out" -type f | wc -l) files from $pkg $ver"
done
