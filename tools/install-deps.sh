#!/usr/bin/env bash
# tools/install-deps.sh — install everything codevec needs to build, run and
# test on Debian 12, from Debian's packages. Idempotent: does nothing when
# every package is already installed. Needs root (or sudo).
set -euo pipefail

packages=(
	# build
	build-essential pkg-config git ca-certificates
	# PostgreSQL 15 server, headers and the test tools (pgTAP, pg_prove)
	postgresql-15 postgresql-server-dev-15 postgresql-client-15
	postgresql-15-pgtap libtap-parser-sourcehandler-pgtap-perl
	# fuzzing harnesses (libFuzzer ships with Debian's clang)
	clang libclang-rt-14-dev
	# the encoder: BLAS, Unicode, JSON
	libopenblas-dev libdnnl-dev libutf8proc-dev libcjson-dev
	# the loader: tree-sitter runtime, .gitignore rules, client library
	libtree-sitter-dev libgit2-dev libpq-dev libssl-dev
	# codevec-serve: HTTP server library, the page's code highlighter;
	# its tests drive a headless Chromium (Selenium from PyPI) and wrk
	libmicrohttpd-dev libjs-highlight.js chromium chromium-driver wrk
	# model and grammar downloads from PyPI, fixture scripts
	python3 python3-pip python3-venv
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep "install ok installed" >/dev/null || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# refresh the package lists when they are missing or older than a day
if [ -z "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages' -mtime -1 2>/dev/null | head -1)" ]; then
	$sudo apt-get update -q >&2
fi
$sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
