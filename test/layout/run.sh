#!/usr/bin/env bash
# test/layout/run.sh — the source layout rules of issue 26 (see check.py):
# no circle between .c units in loaders/ and src/ (includes of a unit's
# header, and global symbols one object uses from another: nm), no file over
# 1,500 lines and no function in src/ over 150 lines without a written
# reason. Needs the built objects (make CUDA=0 and make -C loaders, as
# test/run.sh does first); no server. Ends with "N passed, N failed".
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
exec python3 "$top/test/layout/check.py" "$top"
