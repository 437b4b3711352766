"""The IVF parameters chosen for an index's size, and the OpenBLAS kernel choice made before faiss loads."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from papersys.search import ann
from papersys.search.ann import AnnParams, lists_for, needs_training, openblas_core


def test_lists_grow_with_the_square_root_of_the_rows_in_powers_of_two() -> None:
    auto = AnnParams()
    assert lists_for(3_000_000, auto) == 4096  # 2·√3 M = 3,464 → 2^12 is the nearest power of two
    assert lists_for(1_000_000, auto) == 2048
    assert lists_for(50_000, auto) == 512
    # never fewer than TRAIN_PER_LIST vectors to train each list, never fewer than one list
    assert lists_for(400, auto) == 400 // ann.TRAIN_PER_LIST
    assert lists_for(3, auto) == 1
    assert lists_for(3_000_000, AnnParams(lists=1000)) == 1000  # configured: taken as it is


def test_an_index_is_trained_again_once_its_rows_want_twice_its_lists() -> None:
    sample = np.random.default_rng(3).standard_normal((2_000, 16)).astype(np.float32)
    assert ann.list_count(ann.train(16, AnnParams(), sample, lists=16)) == 16
    assert not needs_training(16, 1_000, AnnParams())  # wants 25 lists: under twice 16
    assert needs_training(16, 20_000, AnnParams())  # wants 256
    assert needs_training(16, 1_000, AnnParams(lists=8))  # a configured count that differs
    assert not needs_training(16, 1_000, AnnParams(lists=16))


def test_openblas_kernels_follow_the_cpu_features() -> None:
    assert openblas_core({"avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd", "avx2", "fma"}) == "SkylakeX"
    assert openblas_core({"avx2", "fma", "avx"}) == "Haswell"
    assert openblas_core({"sse4_2"}) is None  # older CPUs: OpenBLAS decides
    assert openblas_core(set()) is None


BOTH = """
import numpy as np
{first}
{second}
from papersys.search import ann
index = ann.train(8, ann.AnnParams(), np.eye(8, dtype=np.float32), lists=2)
ann.add_rows(index, np.arange(8), lambda rows: np.eye(8, dtype=np.float32)[rows])
assert ann.search(index, np.eye(8, dtype=np.float32)[3], 1, probes=2).tolist() == [3]
print(onnxruntime.get_device(), ann.library_version())
"""


@pytest.mark.parametrize("order", [("faiss", "onnxruntime"), ("onnxruntime", "faiss")])
def test_faiss_and_the_query_encoder_runtime_load_in_either_order(order: tuple[str, str]) -> None:
    # the usearch build segfaulted when usearch was imported before onnxruntime; faiss must not
    code = BOTH.format(first=f"import {order[0]}", second=f"import {order[1]}")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["CPU", "faiss", ann.faiss.__version__]
