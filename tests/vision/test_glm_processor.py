"""Loading an image-capable processor for the glm backend (the stock one needs torchvision)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import transformers
from PIL import Image
from vision.backends.glm import apply_pixel_budget
from vision.glm_processor import ImageOnlyProcessor, ensure_image_processor, load_processor
from vision.model_loading import ModelLoadError

from tests.support.tiny_models import GLM46V_TINY, tiny_model_path


@pytest.fixture(scope="module")
def glm_path() -> Path:
    return tiny_model_path(GLM46V_TINY)


def test_loads_a_processor_that_expands_image_tokens(glm_path: Path) -> None:
    processor = load_processor(str(glm_path))
    assert processor.image_processor is not None
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]}],
        tokenize=False,
        add_generation_prompt=True,
        enable_thinking=False,
    )
    assert "<|begin_of_image|><|image|><|end_of_image|>" in prompt
    assert prompt.endswith("<|assistant|>\n<think></think>\n")
    encoded = processor(text=[prompt], images=[Image.new("RGB", (112, 56))], return_tensors="pt")
    image_tokens = int((encoded["input_ids"] == processor.image_token_id).sum())
    # 112×56 px → 8×4 patches of 14 px → 2×2 merged → 8 tokens (= 112·56/784).
    assert image_tokens == 8
    assert tuple(encoded["image_grid_thw"][0].tolist()) == (1, 4, 8)


def test_bare_tokenizer_from_autoprocessor_is_replaced(
    glm_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Some transformers versions hand back just the tokenizer when the video processor
    # cannot be built; that must not reach a request (KeyError: 'pixel_values').
    tokenizer = transformers.AutoTokenizer.from_pretrained(glm_path)
    monkeypatch.setattr(transformers.AutoProcessor, "from_pretrained", lambda *a, **k: tokenizer)
    processor = load_processor(str(glm_path))
    assert isinstance(processor, ImageOnlyProcessor)


def test_processor_assertion_fires_on_bare_tokenizer(glm_path: Path) -> None:
    tokenizer = transformers.AutoTokenizer.from_pretrained(glm_path)
    with pytest.raises(ModelLoadError, match="without an image processor"):
        ensure_image_processor(tokenizer, "some/model")


def test_checkpoint_without_image_processor_is_a_clear_error(glm_path: Path, tmp_path: Path) -> None:
    broken = tmp_path / "no-processor"
    shutil.copytree(glm_path, broken)
    (broken / "preprocessor_config.json").unlink()
    with pytest.raises(ModelLoadError, match="no image processor found"):
        load_processor(str(broken))


@pytest.mark.parametrize(
    ("max_pixels", "size", "tokens"), [(28 * 28 * 16, (1000, 600), 15), (1024 * 1024, (1024, 1024), 1296)]
)
def test_pixel_budget_bounds_tokens_per_image(
    glm_path: Path, max_pixels: int, size: tuple[int, int], tokens: int
) -> None:
    processor = load_processor(str(glm_path))
    apply_pixel_budget(processor.image_processor, 112 * 112, max_pixels)
    grid = processor.image_processor(images=[Image.new("RGB", size)], return_tensors="pt")["image_grid_thw"][
        0
    ]
    assert int(grid.prod()) // 4 == tokens
    assert tokens <= max_pixels / 784
