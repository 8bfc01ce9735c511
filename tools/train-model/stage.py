#!/usr/bin/env python3
"""tools/train-model/stage.py — what a training run on a lent GPU machine
carries, made here: the pairs recompressed with xz, and the base model with
its weights in float16 (halves the 90 MB of all-MiniLM-L6-v2's float32
safetensors, so that base and pairs fit in what one call may carry).

  stage.py --base DIR --pairs pairs.jsonl.gz --out DIR [--max-mb 58]

Writes OUT/pairs.jsonl.xz (the same JSON lines) and OUT/base/ (config,
tokenizer and pooling files copied; model.safetensors rewritten with every
float32 tensor as float16, round to nearest even, other tensors unchanged;
the header's metadata kept).  Prints the sizes and exits 1 when the two
together pass --max-mb (then carry them in two calls: see
tools/train-model/device.sh).  Needs numpy only (no torch).

The float16 base is not bit-for-bit the float32 one: each weight moves by
at most 2^-11 of its magnitude (half a float16 ulp).  train.py loads it
into float32 and trains from there.
"""

import argparse
import gzip
import json
import lzma
import os
import shutil
import struct
import sys

import numpy as np

COPY = ['config.json', 'vocab.txt', 'tokenizer_config.json', 'tokenizer.json',
        'special_tokens_map.json', 'modules.json', 'sentence_bert_config.json',
        'config_sentence_transformers.json', '1_Pooling/config.json']


def to_f16_safetensors(src, dst):
    """Rewrite a safetensors file with F32 tensors as F16 (the format:
    8-byte little-endian header length, a JSON header of dtype / shape /
    data_offsets per tensor, then the data)."""
    with open(src, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        head = json.loads(f.read(n))
        data = f.read()
    out_head, chunks, off = {}, [], 0
    for name in sorted(k for k in head if k != '__metadata__'):
        t = head[name]
        a, b = t['data_offsets']
        raw = data[a:b]
        dtype = t['dtype']
        if dtype == 'F32':
            raw = np.frombuffer(raw, dtype='<f4').astype('<f2').tobytes()
            dtype = 'F16'
        out_head[name] = dict(dtype=dtype, shape=t['shape'], data_offsets=[off, off + len(raw)])
        chunks.append(raw)
        off += len(raw)
    if '__metadata__' in head:
        out_head['__metadata__'] = head['__metadata__']
    hb = json.dumps(out_head, separators=(',', ':')).encode()
    hb += b' ' * (-len(hb) % 8)              # 8-byte alignment of the data
    with open(dst, 'wb') as f:
        f.write(struct.pack('<Q', len(hb)))
        f.write(hb)
        for c in chunks:
            f.write(c)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--base', required=True)
    ap.add_argument('--pairs', required=True)
    ap.add_argument('--out', required=True)
    ap.add_argument('--max-mb', type=float, default=58.0)
    args = ap.parse_args()
    os.makedirs(os.path.join(args.out, 'base'), exist_ok=True)
    for f in COPY:
        src = os.path.join(args.base, f)
        if os.path.exists(src):
            dst = os.path.join(args.out, 'base', f)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            shutil.copyfile(src, dst)
    if os.path.isdir(os.path.join(args.base, '2_Normalize')):
        os.makedirs(os.path.join(args.out, 'base', '2_Normalize'), exist_ok=True)
    to_f16_safetensors(os.path.join(args.base, 'model.safetensors'),
                       os.path.join(args.out, 'base', 'model.safetensors'))
    xz = os.path.join(args.out, 'pairs.jsonl.xz')
    with gzip.open(args.pairs, 'rb') as fi, lzma.open(xz, 'wb', preset=9) as fo:
        shutil.copyfileobj(fi, fo)
    mb = lambda p: sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(p)
                       for f in fs) / 2 ** 20 if os.path.isdir(p) else os.path.getsize(p) / 2 ** 20
    base_mb, pairs_mb = mb(os.path.join(args.out, 'base')), mb(xz)
    print('stage: base (float16) %.1f MiB, pairs %.1f MiB, together %.1f MiB -> %s'
          % (base_mb, pairs_mb, base_mb + pairs_mb, args.out))
    if base_mb + pairs_mb > args.max_mb:
        print('stage: more than %.0f MiB: carry base and pairs in two calls' % args.max_mb)
        sys.exit(1)


if __name__ == '__main__':
    main()
