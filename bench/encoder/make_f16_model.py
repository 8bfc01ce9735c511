#!/usr/bin/env python3
"""make_f16_model.py SRC_DIR DST_DIR - copy a sentence-transformers BERT
folder with model.safetensors' F32 tensors converted to F16 (round to
nearest, Python's struct 'e'; no numpy needed). Used by bench/encoder to
carry all-MiniLM-L6-v2 (90 MB F32 -> 45 MB) to the GPU host; src/model.c
and sentence-transformers both load the result. README.md is left out."""
import json, struct, sys, shutil, os
src, dst = sys.argv[1], sys.argv[2]
shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns('model.safetensors', 'README.md'))
with open(os.path.join(src,'model.safetensors'),'rb') as f:
    n = struct.unpack('<Q', f.read(8))[0]
    hdr = json.loads(f.read(n)); base = 8+n
    data = f.read()
out_hdr = {}; chunks = []; off = 0
for name, t in hdr.items():
    if name == '__metadata__': out_hdr[name] = t; continue
    b, e = t['data_offsets']; raw = data[b:e]
    if t['dtype'] == 'F32':
        cnt = len(raw)//4
        raw = struct.pack('<%de' % cnt, *struct.unpack('<%df' % cnt, raw))
        dt = 'F16'
    else: dt = t['dtype']
    out_hdr[name] = {'dtype': dt, 'shape': t['shape'], 'data_offsets': [off, off+len(raw)]}
    chunks.append(raw); off += len(raw)
h = json.dumps(out_hdr).encode(); h += b' ' * ((8 - len(h) % 8) % 8)
with open(os.path.join(dst,'model.safetensors'),'wb') as f:
    f.write(struct.pack('<Q', len(h))); f.write(h)
    for c in chunks: f.write(c)
