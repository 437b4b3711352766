"""The ONNX query encoder on the real all-MiniLM-L6-v2: same vectors as sentence-transformers on 1,000 real
papers, query_prefix, refusal of stale or partial exports, atomic swap under a kill, the fallback, and a
query process that never imports torch."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from papersys.config import ModelConfig
from papersys.embed.engines.base import Engine, Vectors
from papersys.errors import EngineError, ManifestMismatchError, StoreError
from papersys.search import encoder_dir
from papersys.search.encoder import FallbackQueryEncoder, QueryEncoder, export_query_encoder, query_encoder
from papersys.search.encoder_dir import EncoderInfo

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
HEAVY = ("torch", "transformers", "sentence_transformers")


def cosines(a: Vectors, b: Vectors) -> Vectors:
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.asarray((a * b).sum(axis=1) / norms, dtype=np.float32)


def clone(exported: tuple[Path, EncoderInfo], into: Path) -> Path:
    """A published copy of the shared export under ``into`` (hard links: cheap, and safe to damage by
    replacing or deleting files, never by writing into them)."""
    directory, _ = exported
    generation = into / f".encoder.{os.getpid()}.0badc0de"
    generation.mkdir(parents=True)
    for entry in encoder_dir.resolve(directory).iterdir():  # type: ignore[union-attr]
        os.link(entry, generation / entry.name)
    os.symlink(generation.name, into / "encoder")
    return into / "encoder"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_onnx_gives_sentence_transformers_vectors_on_1000_real_titles_and_250_papers(
    exported: tuple[Path, EncoderInfo], minilm: Engine, real_papers: list[dict[str, str]]
) -> None:
    directory, _ = exported
    encoder = QueryEncoder.open(directory, ModelConfig())
    # 1,000 real titles (what queries look like), and 250 whole papers that run past 256 tokens (truncation
    # and padding); all 1,000 papers embedded twice would cost minutes of CPU for no new code path
    titles = [p["title"] for p in real_papers]
    papers = [f"{p['title']}\n{p['abstract']}" for p in real_papers[::4]]  # the default template
    assert len(titles) == 1000 and len(papers) == 250
    for texts in (titles, papers):
        ours = encoder.embed(texts)
        reference = minilm.embed(texts)
        assert ours.dtype == np.float32 and ours.shape == (len(texts), 384)
        found = cosines(ours, reference)
        assert found.min() >= 0.999, f"worst: {texts[int(found.argmin())][:80]!r} at {found.min()}"
        assert float(np.median(found)) >= 0.99999
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_export_writes_a_checked_encoder_behind_a_symlink(exported: tuple[Path, EncoderInfo]) -> None:
    directory, info = exported
    assert directory.is_symlink()
    target = encoder_dir.resolve(directory)
    assert target is not None and target.parent == directory.parent
    assert sorted(p.name for p in target.iterdir()) == ["encoder.json", "model.onnx", "tokenizer.json"]
    assert [p.name for p in directory.parent.iterdir() if p.name.startswith(".")] == [target.name]  # no leftovers
    raw = json.loads((directory / "encoder.json").read_text())
    assert raw["format"] == 1 and raw["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert (raw["dim"], raw["max_length"], raw["pooling"], raw["normalize"]) == (384, 256, "mean", True)
    assert raw["inputs"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert raw["sentence_transformers"][0].isdigit() and raw["torch"][0].isdigit()
    assert raw["check"]["texts"] == 32 + 3 and raw["check"]["min_cosine"] >= 0.999  # 32 titles + 3 probes
    assert raw["onnx_bytes"] == (directory / "model.onnx").stat().st_size
    assert EncoderInfo.from_json(directory / "encoder.json") == info


def test_long_text_is_cut_where_sentence_transformers_cuts(
    exported: tuple[Path, EncoderInfo], minilm: Engine, real_papers: list[dict[str, str]]
) -> None:
    encoder = QueryEncoder.open(exported[0], ModelConfig())
    long_text = " ".join(p["abstract"] for p in real_papers[:5])  # far past 256 tokens
    batch = [long_text, "x", real_papers[0]["title"]]  # padding beside truncation
    assert cosines(encoder.embed(batch), minilm.embed(batch)).min() >= 0.9999
    assert encoder.embed([]).shape == (0, 384)


def test_query_prefix_is_put_before_the_query_and_nothing_else(exported: tuple[Path, EncoderInfo]) -> None:
    plain = QueryEncoder.open(exported[0], ModelConfig())
    prefixed = QueryEncoder.open(exported[0], ModelConfig(query_prefix="query: ", prefix="passage: "))
    query = "dark matter halo profiles"
    np.testing.assert_allclose(prefixed.embed([query]), plain.embed([f"query: {query}"]), atol=1e-6)
    assert cosines(prefixed.embed([query]), plain.embed([query]))[0] < 0.999  # the prefix changed it
    np.testing.assert_array_equal(prefixed.encode([query]), plain.encode([query]))  # encode() adds nothing


class Recorder:
    """An engine that records what it was asked to embed."""

    dim = 3

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.closed = False

    def embed(self, texts: Sequence[str]) -> Vectors:
        self.seen += texts
        return np.ones((len(texts), 3), dtype=np.float32)

    def close(self) -> None:
        self.closed = True


def test_fallback_applies_query_prefix_without_template() -> None:
    recorder = Recorder()
    fallback = FallbackQueryEncoder(ModelConfig(query_prefix="query: ", template="{title}"), recorder)
    assert fallback.embed(["a", "b"]).shape == (2, 3) and fallback.dim == 3
    fallback.close()
    assert recorder.seen == ["query: a", "query: b"] and recorder.closed


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max_length": 128}, "max_length: exported 256 != configured 128"),
        ({"dim": 768}, "dim: exported 384 != configured 768"),
        ({"name": "BAAI/bge-small-en-v1.5"}, "name: exported 'sentence-transformers/all-MiniLM-L6-v2' != configured"),
    ],
)
def test_an_export_for_another_configuration_is_refused_naming_the_difference(
    exported: tuple[Path, EncoderInfo], changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ManifestMismatchError, match="encoder.json: ") as err:
        QueryEncoder.open(exported[0], ModelConfig(**changes))
    assert message in str(err.value) and "papersys index" in str(err.value)


def test_a_stale_export_falls_back_to_sentence_transformers_with_a_warning(
    exported: tuple[Path, EncoderInfo], minilm: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    model = ModelConfig(max_length=128)
    with caplog.at_level(logging.INFO, logger="papersys.search.encoder"):
        engine = query_encoder(model, exported[0])
    assert isinstance(engine, FallbackQueryEncoder)
    assert "max_length: exported 256 != configured 128" in caplog.text and "papersys index" in caplog.text
    assert caplog.records[-1].levelno == logging.WARNING
    vector = engine.embed(["graph neural networks"])
    assert cosines(vector, minilm.embed(["graph neural networks"]))[0] > 0.99  # 128 vs 256 tokens: same here
    engine.close()


def test_no_export_means_the_normal_engine_and_a_hint(
    tmp_path: Path, minilm: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    model = ModelConfig(query_prefix="query: ")
    with caplog.at_level(logging.INFO, logger="papersys.search.encoder"):
        engine = query_encoder(model, tmp_path / "index" / "minilm" / "encoder")
    assert isinstance(engine, FallbackQueryEncoder)
    assert "no query encoder exported" in caplog.text and "`papersys index` makes queries fast" in caplog.text
    np.testing.assert_allclose(engine.embed(["x"]), minilm.embed(["query: x"]), atol=1e-5)
    engine.close()


def test_the_export_is_what_query_encoder_returns(exported: tuple[Path, EncoderInfo]) -> None:
    engine = query_encoder(ModelConfig(), exported[0])
    assert isinstance(engine, QueryEncoder) and engine.dim == 384
    engine.close()


def test_partial_exports_are_never_opened(exported: tuple[Path, EncoderInfo], tmp_path: Path) -> None:
    model = ModelConfig()
    # a kill mid-export: a generation that was never published, and no symlink
    leftover = tmp_path / "a" / ".encoder.999999999.0badc0de"
    leftover.mkdir(parents=True)
    (leftover / "model.onnx").write_bytes(b"\x08\x07half")
    with pytest.raises(StoreError, match="no query encoder exported here"):
        QueryEncoder.open(tmp_path / "a" / "encoder", model)
    assert encoder_dir.sweep(tmp_path / "a" / "encoder") == 1 and not leftover.exists()  # pid 999999999: dead

    damaged = clone(exported, tmp_path / "b")
    (damaged / "model.onnx").unlink()
    with pytest.raises(StoreError, match=r"model.onnx: incomplete export: missing"):
        QueryEncoder.open(damaged, model)

    truncated = clone(exported, tmp_path / "c")
    target = encoder_dir.resolve(truncated)
    assert target is not None
    data = (target / "model.onnx").read_bytes()
    (target / "model.onnx").unlink()  # a new inode: the shared export keeps its own
    (target / "model.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(StoreError, match=r"incomplete export: \d+ bytes, expected \d+"):
        QueryEncoder.open(truncated, model)

    unfinished = clone(exported, tmp_path / "d")
    (unfinished / "encoder.json").unlink()
    with pytest.raises(StoreError, match="encoder.json: missing"):
        QueryEncoder.open(unfinished, model)
    assert isinstance(query_encoder(ModelConfig(isolation="inline"), unfinished), FallbackQueryEncoder)

    (tmp_path / "e").mkdir()
    os.symlink("/etc", tmp_path / "e" / "encoder")
    with pytest.raises(StoreError, match="not to one of its generations"):
        QueryEncoder.open(tmp_path / "e" / "encoder", model)


def test_an_export_that_fails_its_check_is_refused_and_leaves_the_previous_one(
    exported: tuple[Path, EncoderInfo], minilm: Engine, tmp_path: Path
) -> None:
    from papersys.search import encoder_export

    directory = clone(exported, tmp_path / "idx")
    before = encoder_dir.resolve(directory)
    generation = encoder_dir.new_generation(directory)
    for entry in encoder_dir.resolve(exported[0]).iterdir():  # type: ignore[union-attr]
        os.link(entry, generation / entry.name)
    wrong = EncoderInfo(**{**exported[1].__dict__, "pooling": "cls"})  # pools differently from the model
    st = minilm._st  # type: ignore[attr-defined]
    with pytest.raises(EngineError, match=r"ONNX vectors differ from sentence-transformers' \(cosine 0\.\d+ < 0\.999"):
        encoder_export._check(ModelConfig(), st, generation, wrong, ["graph neural networks", "dark matter"])
    assert encoder_dir.resolve(directory) == before
    assert QueryEncoder.open(directory, ModelConfig()).info == exported[1]


def test_models_the_encoder_cannot_reproduce_are_refused() -> None:
    from papersys.search.encoder_export import _supported

    def module(kind: str, config: dict[str, Any] | None = None, **attrs: Any) -> Any:
        obj = type(kind, (), {"get_config_dict": lambda self: config or {}})()
        obj.__dict__.update(attrs)
        return obj

    class Pipeline(list[Any]):
        tokenizer = type("Fast", (), {"backend_tokenizer": object()})()
        default_prompt_name: str | None = None
        prompts: dict[str, str] = {}  # noqa: RUF012

        def get_sentence_embedding_dimension(self) -> int:
            return 384

    def pipeline(*modules: Any, **attrs: Any) -> Pipeline:
        result = Pipeline(modules)
        result.__dict__.update(attrs)
        return result

    model = ModelConfig()
    mean = {"pooling_mode": "mean", "include_prompt": True}
    assert _supported(model, pipeline(module("Transformer"), module("Pooling", mean))) == ("mean", False)
    old_style = {"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}  # sentence-transformers < 6
    assert _supported(model, pipeline(module("Transformer"), module("Pooling", old_style), module("Normalize"))) == (
        "cls",
        True,
    )
    refused = {
        "pooling is 'max'": pipeline(module("Transformer"), module("Pooling", {"pooling_mode": "max"})),
        "Transformer → Pooling → Dense": pipeline(module("Transformer"), module("Pooling", mean), module("Dense")),
        "include_prompt = false": pipeline(
            module("Transformer"), module("Pooling", {"pooling_mode": "mean", "include_prompt": False})
        ),
        "default prompt 'query'": pipeline(
            module("Transformer"), module("Pooling", mean), default_prompt_name="query", prompts={"query": "q: "}
        ),
        "do_lower_case": pipeline(module("Transformer", do_lower_case=True), module("Pooling", mean)),
        "no fast (Rust) tokenizer": pipeline(module("Transformer"), module("Pooling", mean), tokenizer=object()),
    }
    for message, candidate in refused.items():
        with pytest.raises(EngineError, match="cannot export .* as an ONNX query encoder") as err:
            _supported(model, candidate)
        assert message in str(err.value)
    with pytest.raises(EngineError, match="produces 384-dim vectors but dim = 768"):
        _supported(ModelConfig(dim=768), pipeline(module("Transformer"), module("Pooling", mean)))
    with pytest.raises(EngineError, match="needs texts to check it with"):
        export_query_encoder(model, Path("/nonexistent/encoder"), check_texts=[])


QUERY_SCRIPT = """
import json, sys
from pathlib import Path
from papersys.config import ModelConfig
from papersys.search.encoder import QueryEncoder
encoder = QueryEncoder.open(Path(sys.argv[1]), ModelConfig())
vector = encoder.embed(["graph neural networks for molecules"])[0]
print(json.dumps({"head": vector[:8].tolist(), "modules": sorted(sys.modules)}))
"""


def test_a_query_process_imports_neither_torch_nor_transformers(exported: tuple[Path, EncoderInfo]) -> None:
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    out = subprocess.run(
        [sys.executable, "-c", QUERY_SCRIPT, str(exported[0])],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )
    result = json.loads(out.stdout)
    heavy = [name for name in result["modules"] if name.split(".")[0] in HEAVY]
    assert heavy == []
    assert "onnxruntime" in result["modules"] and "tokenizers" in result["modules"]
    expected = QueryEncoder.open(exported[0], ModelConfig()).embed(["graph neural networks for molecules"])[0]
    np.testing.assert_allclose(result["head"], expected[:8], atol=1e-6)


KILL_SCRIPT = """
import sys
from pathlib import Path
from papersys.config import ModelConfig
from papersys.search.encoder import export_query_encoder
export_query_encoder(ModelConfig(), Path(sys.argv[1]), check_texts=["graph neural networks"])
print("EXPORTED")
"""


@pytest.mark.slow
def test_a_kill_before_the_swap_leaves_the_previous_export(exported: tuple[Path, EncoderInfo], tmp_path: Path) -> None:
    directory = clone(exported, tmp_path / "idx")
    before = encoder_dir.resolve(directory)
    env = {**os.environ, "PAPERSYS_CRASH_AT": "encoder.before_publish", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(directory)], capture_output=True, text=True, env=env, timeout=600
    )
    assert proc.returncode == 137 and "EXPORTED" not in proc.stdout, proc.stderr[-2000:]
    assert encoder_dir.resolve(directory) == before
    assert QueryEncoder.open(directory, ModelConfig()).info == exported[1]  # the previous export, untouched
    leftovers = [p for p in directory.parent.iterdir() if p.name.startswith(".") and p != before]
    assert leftovers, "the killed export left its generation behind"
    assert encoder_dir.sweep(directory) == len(leftovers)  # its pid is dead: swept by the next export
    assert sorted(directory.parent.iterdir()) == sorted([directory, before])  # type: ignore[type-var]


def test_a_plain_directory_is_replaced_by_a_published_generation(
    exported: tuple[Path, EncoderInfo], tmp_path: Path
) -> None:
    source = encoder_dir.resolve(exported[0])
    assert source is not None
    plain = tmp_path / "encoder"
    shutil.copytree(source, plain, copy_function=os.link)  # e.g. a data dir copied with cp -rL
    assert QueryEncoder.open(plain, ModelConfig()).info == exported[1]
    generation = encoder_dir.new_generation(plain)
    for entry in source.iterdir():
        os.link(entry, generation / entry.name)
    encoder_dir.publish(generation, plain)
    assert plain.is_symlink() and encoder_dir.resolve(plain) == generation
    assert encoder_dir.sweep(plain) == 1  # the plain directory, set aside by publish
    assert QueryEncoder.open(plain, ModelConfig()).info == exported[1]
