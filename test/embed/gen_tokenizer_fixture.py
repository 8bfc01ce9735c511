#!/usr/bin/env python3
"""Generate test/embed/fixtures/tokenizer.jsonl: token ids from Hugging Face
`tokenizers` (BertTokenizerFast via tokenizer.json) for real strings.

Strings: lines, docstrings and function bodies from the CPython standard
library sources and the C headers installed on the machine that ran this
(/usr/lib/python3.11, /usr/include), chosen with a fixed seed, plus Unicode
edge cases written here.  Usage:

    python3 gen_tokenizer_fixture.py MODEL_DIR OUT.jsonl

MODEL_DIR is the all-MiniLM-L6-v2 folder `make model` installs (its
tokenizer.json is what sentence-transformers loads; our C tokenizer reads
the same folder's vocab.txt).
"""
import json
import os
import random
import sys

from tokenizers import Tokenizer

SEED = 20261121
model_dir, out_path = sys.argv[1], sys.argv[2]
tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
tok.no_padding()
rng = random.Random(SEED)


def files_under(root, exts):
    out = []
    for d, _, fs in os.walk(root):
        for f in fs:
            if f.endswith(exts):
                out.append(os.path.join(d, f))
    return sorted(out)


def sample_strings(paths, n, rng):
    out = []
    rng.shuffle(paths)
    for p in paths:
        if len(out) >= n:
            break
        try:
            with open(p, encoding="utf-8") as fh:
                text = fh.read()
        except (UnicodeDecodeError, OSError):
            continue
        lines = text.split("\n")
        if len(lines) < 5:
            continue
        for _ in range(3):
            i = rng.randrange(len(lines))
            k = rng.choice([1, 1, 2, 4, 8, 20])
            s = "\n".join(lines[i:i + k])[:800]
            if s.strip() or rng.random() < 0.05:
                out.append(s)
    return out[:n]


py = files_under("/usr/lib/python3.11", (".py",))
inc = files_under("/usr/include", (".h", ".hpp"))
strings = sample_strings(py, 1300, rng) + sample_strings(inc, 900, rng)

edge = [
    "", " ", "   \t\n  ", "\u00a0\u2003\u3000", "hello", "Hello, World!",
    "café résumé naïve Ångström Øresund Łódź", "ÀÉÎÕÜ àéîõü ñÑ çÇ ß ẞ",
    "İstanbul ıi", "ΣΊΣΥΦΟΣ σίσυφος", "Привет, мир! Ёжик", "مرحبا بالعالم",
    "שָׁלוֹם", "नमस्ते दुनिया", "こんにちは世界", "你好，世界！中文分词测试",
    "한국어 텍스트 안녕하세요", "mixed 中文 and English 混合", "𠀀𠀁 𪜀 丽",
    "emoji 😀🚀🔥 👍🏽 👨‍👩‍👧‍👦 🇫🇷", "zero\u200bwidth\u200cjoin\u200dner\ufeffbom",
    "soft\u00adhyphen", "combining e\u0301 a\u0308 n\u0303 \u0301alone",
    "control\x01\x02\x1f\x7f\x80\x9fchars", "tab\tnew\nline\rcr\x0bvt\x0cff\x85nel",
    # no U+0000: PostgreSQL text cannot hold it (cv_tokenize drops it anyway)
    "replacement\ufffdchar", "private\ue000use\U000f0000",
    "unassigned\u0378\u0379", "a" * 100, "b" * 101, "x" * 250 + " tail",
    "supercalifragilisticexpialidocious" * 3, "snake_case_identifier_name",
    "camelCaseIdentifierName", "HTTPServerRequestHandler", "__init__(self)",
    "def f(x):\n    return x**2  # square", "int main(int argc, char **argv) { return 0; }",
    "a+b-c*d/e%f^g&h|i~j<k>l=m?n:o;p,q.r!s@t#u$v`w'x\"y\\z",
    "std::vector<std::string> v; v.push_back(\"x\");", "<<= >>= -> => ::",
    "1234567890 3.14159 1e-10 0xDEADBEEF", "«quotes» „German“ ‘single’ “double”",
    "dash – em — ellipsis … bullet • section § pilcrow ¶", "¿Qué? ¡Sí!",
    "math ∑∫√∞≠≤≥ ±×÷", "currency $€£¥₹ ₿", "fullwidth ＡＢＣ１２３！", "ﬁ ﬂ ligatures",
    "Ⅻ roman ⅻ", "superscript x² x³ H₂O", "Ⅰ ① ⑴ ⒈", "ⓐⓑⓒ", "ǅ ǈ ǋ titlecase",
    "Kelvin K Ohm Ω Angstrom Å", "tilde ̃ alone", "\u0300\u0301\u0302",
    "Türkçe ÇĞİÖŞÜ çğıöşü", "Tiếng Việt có dấu", "ελληνικά ά έ ή ί ό ύ ώ ΐ ΰ",
    "jalapeño piñata", "日本語のテキスト、句読点。", "ｶﾀｶﾅ half width", "꧁꧂ ༺༻",
    "x\u2028y\u2029z", "a\u180eb", "w\u2060j", "\u00ad", "###", "##ing", "[CLS] [SEP] [UNK]", "x[SEP]y [MASK]ed [cls] [PAD", "[[CLS]]",
]
strings += edge
rng2 = random.Random(SEED + 1)
chars = [chr(c) for c in list(range(0x20, 0x7f)) + list(range(0xa0, 0x250)) +
         list(range(0x370, 0x400)) + list(range(0x3040, 0x3100)) +
         list(range(0x4e00, 0x4e40)) + [0x1f600, 0x1f680, 0x200b, 0x301, 0x9, 0xa]]
for _ in range(120):
    strings.append("".join(rng2.choice(chars) for _ in range(rng2.randrange(1, 60))))

with open(out_path, "w", encoding="utf-8") as out:
    for i, s in enumerate(strings):
        max_len = 512 if i % 10 else rng.choice([2, 3, 8, 16, 64, 256])
        tok.enable_truncation(max_length=max_len)
        ids = tok.encode(s).ids
        out.write(json.dumps({"text": s, "max_tokens": max_len, "ids": ids},
                             ensure_ascii=True) + "\n")
print(f"{len(strings)} strings -> {out_path}", file=sys.stderr)
