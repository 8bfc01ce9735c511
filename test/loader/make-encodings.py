#!/usr/bin/env python3
"""make-encodings.py -- write test/loader/encodings/, source files in the
encodings codevec-load must read as Python and editors do (see
loaders/encoding.c).  Re-run to regenerate; the files are committed.

Each file's expected reading is not stored here: test/loader/textref.py
derives it from the bytes with Python's own codecs and tokenize.
"""
import codecs
import os
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "encodings")

FILES = {
    # PEP 263, line 1, Emacs style
    "latin1.py": ('# -*- coding: latin-1 -*-\n'
                  'def café(prix):\n'
                  '    """Ça coûte 5 ¤, déjà payé."""\n'
                  '    return "naïve"\n').encode("latin-1"),
    # PEP 263, line 1, plain
    "big5.py": ('# coding: big5\n'
                'def 說明():\n'
                '    """中文說明：讀取設定檔"""\n'
                '    return "繁體"\n').encode("big5"),
    # PEP 263 on line 2 after a #! line, vim spelling, cp1252 quotes and euro
    "cp1252.py": ('#!/usr/bin/env python3\n'
                  '# vim: set fileencoding=cp1252 :\n'
                  'def price():\n'
                  '    """Costs \u201c5 \u20ac\u201d."""\n'
                  '    return 5\n').encode("cp1252"),
    # a cookie on line 3 is no declaration: UTF-8 with a stray byte
    "line3.py": b'#!/usr/bin/env python3\nx = 1\n# coding: latin-1\ndef f():\n    return "\xe9"\n',
    # UTF-16 with a BOM, both byte orders; UTF-32 LE
    "utf16le.js": codecs.BOM_UTF16_LE + ('// Grüße\nfunction grüßen(name) {\n'
                                         '  return "Hallo, " + name + " 👋";\n}\n').encode("utf-16-le"),
    "utf16be.c": codecs.BOM_UTF16_BE + ('/* Größe in Bytes. */\nint größe(void)\n{\n'
                                        '\treturn 1; /* ✓ */\n}\n').encode("utf-16-be"),
    "utf32le.go": codecs.BOM_UTF32_LE + ('package p\n\n// Ω returns ohm.\nfunc Ω() string {\n'
                                         '\treturn "Ω"\n}\n').encode("utf-32-le"),
    # a UTF-8 BOM
    "bom.py": codecs.BOM_UTF8 + 'def bom():\n    """Mit BOM: äöü."""\n    return 1\n'.encode(),
    # Emacs cookie in C, and on line 2 after #! in JavaScript
    "emacs.c": ('/* -*- mode: c; coding: latin-1 -*- */\n'
                '/* Æble, øl og år. */\nint æble(void) { return 0; }\n').encode("latin-1"),
    "emacs2.js": ('#!/usr/bin/env node\n// -*- coding: iso-8859-15-unix -*-\n'
                  'function euro() { return "€"; }\n').encode("iso-8859-15"),
    # stray invalid bytes in UTF-8: a Latin-1 byte, a lone continuation,
    # truncated 2-, 3- and 4-byte sequences, an overlong, a surrogate,
    # bytes that never occur (F5, FF), a code point above U+10FFFF
    "invalid.c": (b'/* caf\xe9 \x80 \xc3 \xe2\x82 \xf0\x9f\x98 \xc0\xaf \xed\xa0\x80 '
                  b'\xf5\xff \xf4\x90\x80\x80 ok \xc3\xa9 */\n'
                  b'int invalid(const char *s) { return s[0] == \'\xe9\'; }\n'),
    # skipped: an encoding nobody knows, bytes the declared one cannot
    # decode, a UTF-8 BOM in front of another declared encoding, and a
    # UTF-16 file with an unpaired surrogate
    "unknown.py": b'# coding: no-such-codec\ndef unknown():\n    pass\n',
    "undecodable.py": b'# coding: ascii\ndef undecodable():\n    return "\xff"\n',
    "bomlatin.py": codecs.BOM_UTF8 + b'# coding: latin-1\ndef bomlatin():\n    pass\n',
    "badutf16.js": codecs.BOM_UTF16_LE + 'function f() {}\n'.encode("utf-16-le") + b'\x00\xd8\x41\x00',
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in sorted(FILES.items()):
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print("wrote %d files to %s" % (len(FILES), OUT), file=sys.stderr)


if __name__ == "__main__":
    main()
