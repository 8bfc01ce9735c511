#!/bin/sh
# fetch-grammars.sh BUILD_DIR -- download, verify and unpack the tree-sitter
# grammar sdists pinned in grammars.tsv (next to this script).
#
# For each manifest row: `pip download` the sdist into BUILD_DIR/dl/<name>/
# (skipped when a tarball with the pinned sha256 is already there), check its
# sha256 against the manifest (a mismatch is fatal), unpack it into
# BUILD_DIR/src/<name>/.  The "headers" row provides tree_sitter/parser.h,
# ts_assert.h,
# array.h and alloc.h, copied to BUILD_DIR/include/tree_sitter/.
# Finally touches BUILD_DIR/grammars.stamp.  Exit status: 0 ok, 1 failure.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-$here/build}
manifest=$here/grammars.tsv
if [ -z "${PIP:-}" ]; then
    if command -v pip >/dev/null 2>&1; then PIP=pip; else PIP="python3 -m pip"; fi
fi
mkdir -p "$build/dl" "$build/src" "$build/include/tree_sitter"

grep -v '^#' "$manifest" | grep -v '^[[:space:]]*$' |
while IFS='	' read -r pkg version sha name langs; do
    dl=$build/dl/$name
    mkdir -p "$dl"
    tarball=
    for f in "$dl"/*.tar.gz; do
        [ -f "$f" ] || continue
        if [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$sha" ]; then tarball=$f; fi
    done
    if [ -z "$tarball" ]; then
        rm -f "$dl"/*.tar.gz
        echo "fetch-grammars: downloading $pkg==$version" >&2
        $PIP download --quiet --no-deps --no-binary :all: \
            --dest "$dl" "$pkg==$version" >&2
        tarball=$(ls "$dl"/*.tar.gz | head -n 1)
        got=$(sha256sum "$tarball" | cut -d' ' -f1)
        if [ "$got" != "$sha" ]; then
            echo "fetch-grammars: sha256 mismatch for $pkg==$version:" \
                 "expected $sha, got $got" >&2
            rm -f "$tarball"
            exit 1
        fi
    fi
    rm -rf "$build/src/$name"
    mkdir -p "$build/src/$name"
    tar -xzf "$tarball" -C "$build/src/$name" --strip-components=1
    if [ "$langs" = headers ]; then
        core=$build/src/$name/tree_sitter/core/lib/src
        cp "$core/parser.h" "$core/array.h" "$core/alloc.h" "$core/ts_assert.h" \
           "$build/include/tree_sitter/"
    fi
done
touch "$build/grammars.stamp"
