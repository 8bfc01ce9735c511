#!/usr/bin/env python3
"""tools/train-model/interpolate.py — weight-space ensembles of the base
encoder and a fine-tuned one (WiSE-FT: Wortsman et al., "Robust fine-tuning
of zero-shot models", CVPR 2022).

  interpolate.py [--extrapolate] BASE FINETUNED ALPHA DST

Writes the model folder DST whose every weight is

    (1 - ALPHA) * base + ALPHA * finetuned        (0 <= ALPHA <= 1)

computed in float32 and stored as float16 (the dtype a GPU run carries and
models/ ships; integer tensors are copied from FINETUNED). ALPHA 0 is the
base model, 1 the fine-tuned one. Fine-tuning moved the base's weights on
docstring-like queries only; the paper finds that points between the two
often keep most of the fine-tuned gain in distribution and lose less of the
base's robustness to other query styles, which is what issue 27 measures
(bench/quality/ood: choose ALPHA on the dev halves, report the test halves).

BASE and FINETUNED are model folders as codevec_models holds them
(config.json, model.safetensors, tokenizer files) of the same architecture:
every tensor of FINETUNED must be in BASE with the same shape (tensors only
in BASE, such as a stored position_ids buffer, are left out), else the
script stops with an error naming the tensor. config.json and the
tokenizer files are copied from FINETUNED; DST/interpolation.json records
both inputs' sha256 and ALPHA.

--extrapolate lets ALPHA be any finite number, for one use: getting back
the fine-tuned model of a mixture whose base is known. The shipped model
is 0.3 * base + 0.7 * wq5, so `--extrapolate BASE SHIPPED 1/0.7 WQ5`
(ALPHA 1.4285714285714286) gives wq5 again, up to the float16 rounding:
each weight within half a float16 ulp of the shipped weight divided by
0.7, plus half an ulp of its own (the shipped model's storage error scaled
by ALPHA, then the output's); the bytes differ from the original's. A
weight that leaves float16's range (|x| > 65504) stops the script with an
error naming the tensor.
"""

import hashlib
import json
import os
import shutil
import sys

import numpy as np
from safetensors.numpy import load_file, save_file

KEEP = ('config.json', 'tokenizer.json', 'tokenizer_config.json', 'vocab.txt',
        'special_tokens_map.json', 'sentence_bert_config.json', 'modules.json',
        'config_sentence_transformers.json')


def sha256(path):
    with open(path, 'rb') as f:
        return hashlib.file_digest(f, 'sha256').hexdigest()


def interpolate(base, tuned, alpha):
    """The WiSE-FT mixture of two state dicts (name -> numpy array)."""
    out = {}
    for name, t in tuned.items():
        if name not in base:
            raise ValueError('tensor %s of the fine-tuned model is not in the base' % name)
        b = base[name]
        if b.shape != t.shape:
            raise ValueError('tensor %s: base shape %s, fine-tuned shape %s'
                             % (name, b.shape, t.shape))
        if not np.issubdtype(t.dtype, np.floating):
            out[name] = t
            continue
        mix = (1.0 - alpha) * b.astype(np.float32) + alpha * t.astype(np.float32)
        if not np.all(np.abs(mix) <= np.finfo(np.float16).max):
            raise ValueError('tensor %s leaves float16\'s range at alpha %g' % (name, alpha))
        out[name] = mix.astype(np.float16)
    return out


def main():
    args = sys.argv[1:]
    extrapolate = bool(args) and args[0] == '--extrapolate'
    if extrapolate:
        args = args[1:]
    if len(args) != 4:
        sys.exit(__doc__)
    base_dir, tuned_dir, alpha, dst = args
    try:
        alpha = float(alpha)
    except ValueError:
        sys.exit('interpolate.py: ALPHA must be a number, got %r' % alpha)
    if not np.isfinite(alpha):
        sys.exit('interpolate.py: ALPHA must be a finite number, got %g' % alpha)
    if not extrapolate and not 0.0 <= alpha <= 1.0:
        sys.exit('interpolate.py: ALPHA must be in [0, 1] (or any number with --extrapolate), got %g' % alpha)
    bw = os.path.join(base_dir, 'model.safetensors')
    tw = os.path.join(tuned_dir, 'model.safetensors')
    for p in (bw, tw):
        if not os.path.isfile(p):
            sys.exit('interpolate.py: %s: no such file' % p)
    try:
        mixed = interpolate(load_file(bw), load_file(tw), alpha)
    except ValueError as e:
        sys.exit('interpolate.py: %s' % e)
    os.makedirs(dst, exist_ok=True)
    for f in KEEP:
        if os.path.exists(os.path.join(tuned_dir, f)):
            shutil.copy(os.path.join(tuned_dir, f), dst)
    pool = os.path.join(tuned_dir, '1_Pooling')
    if os.path.isdir(pool):
        shutil.copytree(pool, os.path.join(dst, '1_Pooling'), dirs_exist_ok=True)
    out = os.path.join(dst, 'model.safetensors')
    save_file(mixed, out)
    info = {'method': 'WiSE-FT weight-space ensemble (Wortsman et al., CVPR 2022)'
            + (', extrapolated' if not 0.0 <= alpha <= 1.0 else ''),
            'alpha': alpha,
            'base': {'folder': os.path.abspath(base_dir), 'model_safetensors_sha256': sha256(bw)},
            'finetuned': {'folder': os.path.abspath(tuned_dir), 'model_safetensors_sha256': sha256(tw)},
            'model_safetensors_sha256': sha256(out)}
    with open(os.path.join(dst, 'interpolation.json'), 'w') as f:
        json.dump(info, f, indent=1)
        f.write('\n')
    print('%s: alpha %.4g, %d tensors, %.1f MB' % (dst, alpha, len(mixed), os.path.getsize(out) / 1e6))


if __name__ == '__main__':
    main()
