#!/usr/bin/env python3
"""meta_check.py META.json [DIST_ROOT] -- check a PGXN META.json against the
PGXN Meta Spec 1.0.0 (https://pgxn.org/spec/, the rules PGXN::Meta::Validator
enforces: required keys, the name's characters, semantic versions, the
license names, provides/prereqs/resources shapes, release_status) and
against this repository: the version is the Makefile's EXTVERSION and
codevec.control's default_version, and every file provides names exists
under DIST_ROOT (default: the folder of META.json).

Prints one TAP-like line per check and "N passed, N failed"; exit status 1
on failure.  Written from the spec's text; no PGXN code is used.
"""
import json
import os
import re
import sys

SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                    r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$")
LICENSES = {
    "agpl_3", "apache_1_1", "apache_2_0", "artistic_1", "artistic_2", "bsd",
    "freebsd", "gfdl_1_2", "gfdl_1_3", "gpl_1", "gpl_2", "gpl_3", "lgpl_2_1",
    "lgpl_3_0", "mit", "mozilla_1_0", "mozilla_1_1", "openssl", "perl_5",
    "postgresql", "qpl_1_0", "ssleay", "sun", "zlib", "open_source",
    "restricted", "unrestricted", "unknown",
}
PHASES = {"configure", "build", "runtime", "test", "develop"}
RELATIONS = {"requires", "recommends", "suggests", "conflicts"}
REQUIRED = ["name", "abstract", "maintainer", "license", "provides",
            "version", "meta-spec"]
KNOWN = set(REQUIRED) | {"description", "generated_by", "tags", "no_index",
                         "prereqs", "release_status", "resources"}

results = []


def check(cond, what):
    results.append((bool(cond), what))


def is_term(s):
    """A "Term" of the spec: at least two characters, no slash, backslash,
    control character or whitespace."""
    return (isinstance(s, str) and len(s) >= 2
            and not re.search(r"[/\\\s\x00-\x1f\x7f]", s))


def is_version_range(v):
    """A prereq version: 0, a semantic version, or operators with versions
    separated by commas (">= 1.2.0, != 1.5.0")."""
    if v == 0 or v == "0":
        return True
    if not isinstance(v, str):
        return False
    for part in v.split(","):
        m = re.match(r"^\s*(==|!=|>=|<=|>|<)?\s*(\S+)\s*$", part)
        if not m or not SEMVER.match(m.group(2)):
            return False
    return True


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else "META.json"
    root = sys.argv[2] if len(sys.argv) > 2 else os.path.dirname(os.path.abspath(path))
    try:
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        print(f"not ok 1 - {path} is JSON: {e}")
        print("0 passed, 1 failed")
        return 1
    check(isinstance(meta, dict), "META.json is a JSON object")

    for k in REQUIRED:
        check(k in meta, f"required key {k!r} present")
    unknown = [k for k in meta if k not in KNOWN and not k.lower().startswith("x_")]
    check(not unknown, f"no keys outside the spec (custom ones start with x_): {unknown}")

    spec = meta.get("meta-spec", {})
    check(isinstance(spec, dict) and spec.get("version") == "1.0.0",
          "meta-spec.version is 1.0.0")
    check(is_term(meta.get("name")), "name is a term (2+ characters, no slash/space/control)")
    check(isinstance(meta.get("version"), str) and SEMVER.match(meta["version"]),
          "version is a semantic version")
    check(isinstance(meta.get("abstract"), str) and meta["abstract"].strip(),
          "abstract is a non-empty string")
    m = meta.get("maintainer")
    check(isinstance(m, str) and m or isinstance(m, list) and m and all(isinstance(x, str) and x for x in m),
          "maintainer is a string or a list of strings")
    lic = meta.get("license")
    ok = (isinstance(lic, str) and lic in LICENSES
          or isinstance(lic, list) and lic and all(x in LICENSES for x in lic)
          or isinstance(lic, dict) and lic and all(isinstance(v, str) and v.startswith("http") for v in lic.values()))
    check(ok, f"license {lic!r} is a spec license name (or name -> URL)")
    if "release_status" in meta:
        check(meta["release_status"] in {"stable", "testing", "unstable"},
              "release_status is stable, testing or unstable")
    if "tags" in meta:
        t = meta["tags"]
        check(isinstance(t, list) and all(isinstance(x, str) and 0 < len(x) < 256 for x in t),
              "tags are strings of 1..255 characters")

    provides = meta.get("provides")
    check(isinstance(provides, dict) and provides, "provides is a non-empty object")
    for ext, p in (provides or {}).items():
        check(is_term(ext), f"provides: {ext!r} is a term")
        check(isinstance(p, dict) and isinstance(p.get("file"), str), f"provides.{ext}.file is a string")
        check(isinstance(p, dict) and isinstance(p.get("version"), str) and SEMVER.match(p["version"]),
              f"provides.{ext}.version is a semantic version")
        if isinstance(p, dict) and isinstance(p.get("file"), str):
            check(os.path.isfile(os.path.join(root, p["file"])), f"provides.{ext}.file {p['file']} exists")
        if isinstance(p, dict) and "docfile" in p:
            check(os.path.isfile(os.path.join(root, p["docfile"])), f"provides.{ext}.docfile {p['docfile']} exists")
        unknown = [k for k in (p or {}) if k not in {"file", "version", "abstract", "docfile"} and not k.startswith("x_")]
        check(not unknown, f"provides.{ext} has only file, version, abstract, docfile: {unknown}")

    prereqs = meta.get("prereqs", {})
    check(isinstance(prereqs, dict), "prereqs is an object")
    for phase, rels in (prereqs or {}).items():
        check(phase in PHASES, f"prereqs phase {phase!r} is one of {sorted(PHASES)}")
        for rel, reqs in (rels or {}).items():
            check(rel in RELATIONS, f"prereqs.{phase}.{rel} is one of {sorted(RELATIONS)}")
            for name, ver in (reqs or {}).items():
                check(is_version_range(ver), f"prereqs.{phase}.{rel}.{name} = {ver!r} is a version range")

    res = meta.get("resources", {})
    if res:
        check(set(res) <= {"homepage", "bugtracker", "repository"} | {k for k in res if k.startswith("x_")},
              "resources has only homepage, bugtracker, repository")
        bt = res.get("bugtracker", {})
        check(isinstance(bt, dict) and set(bt) <= {"web", "mailto"}, "resources.bugtracker has web/mailto")
        rp = res.get("repository", {})
        check(isinstance(rp, dict) and set(rp) <= {"url", "web", "type"}, "resources.repository has url/web/type")

    # this repository's own agreements
    try:
        mk = open(os.path.join(root, "Makefile"), encoding="utf-8").read()
        ext_version = re.search(r"^EXTVERSION\s*=\s*(\S+)", mk, re.M).group(1)
        ctl = open(os.path.join(root, "codevec.control"), encoding="utf-8").read()
        default_version = re.search(r"default_version\s*=\s*'([^']*)'", ctl).group(1)
    except (OSError, AttributeError) as e:
        ext_version = default_version = f"unreadable: {e}"
    check(meta.get("version") == ext_version, f"version {meta.get('version')} = Makefile EXTVERSION {ext_version}")
    check(meta.get("version") == default_version,
          f"version {meta.get('version')} = codevec.control default_version {default_version}")
    check((provides or {}).get("codevec", {}).get("version") == default_version,
          "provides.codevec.version = default_version")

    failed = 0
    for i, (good, what) in enumerate(results, 1):
        print(f"{'ok' if good else 'not ok'} {i} - {what}")
        failed += not good
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
