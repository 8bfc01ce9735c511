#!/usr/bin/env python3
"""textref.py -- how Python and editors decode a source file.

An independent reference for codevec-load's decoding (loaders/encoding.c),
written with Python's own machinery: codecs' BOM constants and decoders,
tokenize.detect_encoding() for Python files (PEP 263), a regular expression
for the Emacs `-*- coding: NAME -*-` cookie of other languages, and
bytes.decode('utf-8', 'replace') for stray invalid bytes.

    decode(data, python) -> (status, text)

status is "ok" (text is a str), "empty", "binary" or "encoding" (the
loader's skip reasons).  No newline translation: the text keeps \\r.

    python3 textref.py FILE...   prints status and encoding per file
"""
import codecs
import io
import re
import sys
import tokenize

# PEP 263 as tokenize has it (used when detect_encoding itself cannot run:
# a first line that is not UTF-8 and declares nothing)
COOKIE = re.compile(rb"^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)")
BLANK = re.compile(rb"^[ \t\f]*(?:[#\r\n]|$)")
EMACS = re.compile(rb"-\*-(.*?)-\*-")
EMACS_CODING = re.compile(rb"coding:[ \t]*([-\w.]+)")
WIDE_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def _normal_name(name):
    """tokenize._get_normal_name."""
    enc = name[:12].lower().replace("_", "-")
    if enc == "utf-8" or enc.startswith("utf-8-"):
        return "utf-8"
    if enc in ("latin-1", "iso-8859-1", "iso-latin-1") or enc.startswith(
            ("latin-1-", "iso-8859-1-", "iso-latin-1-")):
        return "iso-8859-1"
    return name


def declared(data, python):
    """The declared encoding's name (normalised), or None."""
    lines = data.split(b"\n", 2)
    first = lines[0]
    second = lines[1] if len(lines) > 1 else None
    if python:
        try:
            enc, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
            # detect_encoding answers utf-8 both for "declared" and "none"
            m = COOKIE.match(first) or (second is not None and BLANK.match(first)
                                        and COOKIE.match(second))
            return _normal_name(m.group(1).decode()) if m else None
        except SyntaxError:
            pass
        m = COOKIE.match(first)
        if not m and second is not None and BLANK.match(first):
            m = COOKIE.match(second)
        return _normal_name(m.group(1).decode()) if m else None
    for line in (first, second if first.startswith(b"#!") else None):
        if line is None:
            continue
        e = EMACS.search(line)
        if e:
            c = EMACS_CODING.search(e.group(1))
            if c:
                name = c.group(1).decode()
                for eol in ("-unix", "-dos", "-mac"):
                    if name.lower().endswith(eol) and len(name) > len(eol):
                        name = name[: -len(eol)]
                        break
                return name
    return None


def _is_utf8(name):
    try:
        return codecs.lookup(name).name == "utf-8"
    except LookupError:
        return False


def _finish(text):
    if text == "":
        return "empty", None
    if "\0" in text:
        return "binary", None
    return "ok", text


def decode(data, python):
    """Decode a file's bytes as the loader should: (status, text)."""
    if not data:
        return "empty", None
    for bom, enc in WIDE_BOMS:
        if data.startswith(bom):
            try:
                return _finish(data[len(bom):].decode(enc))
            except UnicodeDecodeError:
                return "encoding", None
    if b"\0" in data:
        return "binary", None
    bom = data.startswith(codecs.BOM_UTF8)
    body = data[3:] if bom else data
    name = declared(body, python)
    if name is not None and bom and (name != "utf-8" if python else not _is_utf8(name)):
        return "encoding", None         # tokenize: "encoding problem: utf-8"
    if name is not None and not _is_utf8(name):
        try:
            return _finish(body.decode(name))
        except (LookupError, UnicodeDecodeError):
            return "encoding", None
    return _finish(body.decode("utf-8", "replace"))


def main():
    for path in sys.argv[1:]:
        with open(path, "rb") as f:
            data = f.read()
        status, _ = decode(data, path.endswith((".py", ".pyi")))
        print("%s\t%s\t%s" % (path, status, declared(data, path.endswith((".py", ".pyi")))))


if __name__ == "__main__":
    main()
