#!/usr/bin/env python3
"""bench/quality/ood/f16-copy.py — copy a model folder with its float32
weights stored as float16 (half the bytes), so that a model fits beside the
eval kit in the 64 MiB a GPU run can carry.

  f16-copy.py SRC_FOLDER DST_FOLDER

Copies config.json and the tokenizer files; model.safetensors' F32 tensors
become F16 (integer tensors such as position_ids are kept). eval-models.py
computes in float32 either way; F16 weights moved code.search's vector
MRR@10 by 0.0005 on bench/quality (offline-eval.py's docstring).
"""

import os
import shutil
import sys

import numpy as np
from safetensors.numpy import load_file, save_file

KEEP = ('config.json', 'tokenizer.json', 'tokenizer_config.json', 'vocab.txt',
        'special_tokens_map.json', 'sentence_bert_config.json', 'modules.json')


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    src, dst = sys.argv[1:]
    os.makedirs(dst, exist_ok=True)
    for f in KEEP:
        if os.path.exists(os.path.join(src, f)):
            shutil.copy(os.path.join(src, f), dst)
    w = load_file(os.path.join(src, 'model.safetensors'))
    w = {k: (v.astype(np.float16) if v.dtype == np.float32 else v) for k, v in w.items()}
    save_file(w, os.path.join(dst, 'model.safetensors'))
    print('%s: %.1f MB' % (dst, os.path.getsize(os.path.join(dst, 'model.safetensors')) / 1e6))


if __name__ == '__main__':
    main()
