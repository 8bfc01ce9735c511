#!/usr/bin/env bash
# test/meta/run.sh — META.json against the PGXN Meta Spec 1.0.0 and the
# extension's own files (control version, install script, upgrade chain),
# and test/suite_result.sh (how test/run.sh counts suites) against logs with
# known verdicts (test/meta/suite_result_test.sh).
set -uo pipefail
cd "$(dirname "$0")/../.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
{
python3 - <<'PY'
import json, os, re, sys

passed = failed = 0
def check(ok, what):
    global passed, failed
    print(("ok" if ok else "not ok"), passed + failed + 1, "-", what)
    if ok: passed += 1
    else: failed += 1

semver = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z-]+)?$")
licenses = {"agpl_3", "apache_1_1", "apache_2_0", "artistic_1", "artistic_2", "bsd", "freebsd",
            "gfdl_1_2", "gfdl_1_3", "gpl_1", "gpl_2", "gpl_3", "lgpl_2_1", "lgpl_3_0", "mit",
            "mozilla_1_0", "mozilla_1_1", "openssl", "perl_5", "postgresql", "qpl_1_0", "ssleay",
            "sun", "zlib", "open_source", "restricted", "unrestricted", "unknown"}
try:
    meta = json.load(open("META.json"))
    check(True, "META.json is valid JSON")
except Exception as e:
    check(False, f"META.json is valid JSON ({e})"); meta = {}

for key in ("name", "abstract", "version", "maintainer", "license", "provides", "meta-spec"):
    check(key in meta, f"required key {key!r} present")
check(bool(re.match(r"^[A-Za-z0-9_-]{2,}$", meta.get("name", ""))), "name is a valid PGXN name")
check(bool(semver.match(meta.get("version", ""))), "version is semantic")
m = meta.get("maintainer")
check(isinstance(m, str) or (isinstance(m, list) and m and all(isinstance(x, str) for x in m)), "maintainer is a string or list of strings")
lic = meta.get("license")
check((isinstance(lic, str) and lic in licenses) or isinstance(lic, dict), "license is a known PGXN license")
check(meta.get("meta-spec", {}).get("version") == "1.0.0", "meta-spec version is 1.0.0")
check(meta.get("release_status", "stable") in ("stable", "testing", "unstable"), "release_status is valid")
prov = meta.get("provides", {})
check(isinstance(prov, dict) and len(prov) > 0, "provides lists at least one extension")
for ext, p in prov.items():
    check("file" in p and os.path.exists(p["file"]), f"provides.{ext}.file exists")
    check(semver.match(p.get("version", "")) is not None, f"provides.{ext}.version is semantic")
    if "docfile" in p:
        check(os.path.exists(p["docfile"]), f"provides.{ext}.docfile exists")
for phase, rels in meta.get("prereqs", {}).items():
    check(phase in ("configure", "build", "test", "runtime", "develop"), f"prereqs phase {phase!r} is valid")
    for rel in rels:
        check(rel in ("requires", "recommends", "suggests", "conflicts"), f"prereqs relation {rel!r} is valid")

control = open("codevec.control").read()
dv = re.search(r"default_version\s*=\s*'([^']+)'", control)
check(dv is not None and dv.group(1) == meta.get("version"), "codevec.control default_version equals META.json version")
check(prov.get("codevec", {}).get("version") == meta.get("version"), "provides.codevec.version equals the release version")
check(os.path.exists(f"sql/codevec--{meta.get('version')}.sql"), "the install script of the release exists")
mk = open("Makefile").read()
check(f"sql/codevec--{meta.get('version')}.sql" in mk, "the Makefile installs the release script")
# every script after the first release is reachable by an upgrade path
scripts = sorted(f for f in os.listdir("sql") if re.match(r"^codevec--[0-9.]+--[0-9.]+\.sql$", f))
for s in scripts:
    check(s in mk or "codevec--*--*.sql" in mk, f"upgrade script {s} is installed")
    check(open(os.path.join("sql", s)).read().find("\\echo Use \"ALTER EXTENSION") >= 0, f"upgrade script {s} has the psql guard line")

sys.exit(1 if failed else 0)
PY
echo "# python checks exit status $?"
bash test/meta/suite_result_test.sh
echo "# suite_result_test.sh exit status $?"
} | tee "$out"
p=$(grep -cE '^ok [0-9]+' "$out")
f=$(grep -cE '^not ok [0-9]+' "$out")
echo "$p passed, $f failed"
# a checker that died before its last check shows only as a non-zero status
[ "$f" -eq 0 ] && ! grep -qE '^# .* exit status [1-9]' "$out"
