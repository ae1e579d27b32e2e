"""M-RoPE positions supplied to a plain decode loop match transformers' own generate()."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, DynamicCache
from vision.glm_processor import load_processor
from vision.mrope import MropeModel

from tests.support.tiny_models import GLM46V_TINY, tiny_model_path

STEPS = 10


@pytest.fixture(scope="module")
def glm_path() -> Path:
    return tiny_model_path(GLM46V_TINY)


def greedy_with_kv_cache(model: MropeModel, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The shape of the shared decode loop: one prefill with the images, then 1-token steps.

    Like the loop, it keeps each row's next position itself: the real tokens counted so far
    plus the row's offset from the prefill output (``rope_deltas``).
    """
    mask = inputs["attention_mask"]
    cache = DynamicCache(config=model.config)
    out = model(
        inputs["input_ids"],
        attention_mask=mask,
        past_key_values=cache,
        use_cache=True,
        pixel_values=inputs["pixel_values"],
        image_grid_thw=inputs["image_grid_thw"],
    )
    position = mask.sum(dim=1, keepdim=True) + out.rope_deltas
    tokens = []
    for _ in range(STEPS):
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        tokens.append(token)
        mask = torch.cat([mask, torch.ones_like(token)], dim=1)
        out = model(
            token,
            attention_mask=mask,
            past_key_values=out.past_key_values,
            position_ids=position,
            use_cache=True,
        )
        position = position + 1
    return torch.cat(tokens, dim=1)


def test_left_padded_batch_of_two_images_matches_generate(glm_path: Path) -> None:
    processor = load_processor(str(glm_path))
    processor.tokenizer.padding_side = "left"
    model = AutoModelForImageTextToText.from_pretrained(glm_path).eval()
    prompts = [
        processor.apply_chat_template(
            [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}],
            tokenize=False,
            add_generation_prompt=True,
            enable_thinking=False,
        )
        for question in ("What is this?", "Read the invoice number and the total amount, please.")
    ]
    torch.manual_seed(1)
    images = [Image.new("RGB", (100, 60), (200, 10, 10)), Image.effect_noise((200, 120), 60).convert("RGB")]
    inputs = processor(text=prompts, images=images, return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = model.generate(**inputs, max_new_tokens=STEPS, do_sample=False)[
            :, inputs["input_ids"].shape[1] :
        ]
        got = greedy_with_kv_cache(MropeModel(model), inputs)
    # generate() stops a row at its first end-of-sequence id and pads it; the plain loop runs
    # on, so the two must agree up to and including that id.
    eos = set(model.generation_config.eos_token_id)
    for row_got, row_expected in zip(got.tolist(), expected.tolist(), strict=True):
        end = next((i + 1 for i, token in enumerate(row_expected) if token in eos), len(row_expected))
        assert row_got[:end] == row_expected[:end]


def test_the_wrapper_keeps_no_batch_state_and_refuses_a_step_without_positions(glm_path: Path) -> None:
    # Rows join, leave and move between slots in the loop: an offset kept on the wrapper
    # for "the batch" would be wrong for them. Each offset lives in its row's position.
    wrapper = MropeModel(AutoModelForImageTextToText.from_pretrained(glm_path).eval())
    ids = torch.tensor([[1, 2, 3]])
    with torch.no_grad():
        out = wrapper(ids, attention_mask=torch.ones_like(ids), use_cache=True)
        assert out.rope_deltas.tolist() == [[0]]  # text only: positions equal the token count
        assert not hasattr(wrapper, "select_rows") and not hasattr(wrapper, "_deltas")
        with pytest.raises(ValueError, match="position_ids"):
            wrapper(ids[:, :1], past_key_values=out.past_key_values, use_cache=True)
