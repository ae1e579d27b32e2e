"""How the reasoner's weights are loaded: straight onto the target device, no host-RAM detour."""

from __future__ import annotations

from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from reasoner.backends.loading import from_pretrained_kwargs, load_model  # noqa: E402


def test_a_gpu_load_places_the_weights_on_the_gpu_as_they_are_read() -> None:
    # A device_map makes transformers materialise each tensor on the GPU: a 9B bf16 model
    # must not first need ~18 GB of host RAM and then a .to(device).
    kwargs = from_pretrained_kwargs(device=torch.device("cuda:0"), dtype=torch.bfloat16)
    assert kwargs == {"dtype": torch.bfloat16, "trust_remote_code": False, "device_map": "cuda:0"}
    assert from_pretrained_kwargs(device=torch.device("cuda"), dtype=torch.float16)["device_map"] == "cuda"


def test_transformers_accepts_that_device_map_as_one_device() -> None:
    # The installed transformers (with accelerate) turns it into "the whole model on that GPU".
    from transformers.integrations.accelerate import check_and_set_device_map

    device_map = from_pretrained_kwargs(device=torch.device("cuda:1"), dtype=torch.bfloat16)["device_map"]
    assert check_and_set_device_map(device_map) == {"": torch.device("cuda:1")}


def test_a_cpu_load_is_unchanged() -> None:
    kwargs = from_pretrained_kwargs(device=torch.device("cpu"), dtype=torch.float32)
    assert kwargs == {"dtype": torch.float32, "trust_remote_code": False}


class FakeModel:
    def to(self, *_args: Any, **_kwargs: Any) -> FakeModel:
        raise AssertionError("the weights must be loaded on the device, not moved there afterwards")

    def eval(self) -> FakeModel:
        return self


def test_load_model_passes_the_device_map_and_moves_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def from_pretrained(source: str, **kwargs: Any) -> FakeModel:
        seen.update(kwargs, source=source)
        return FakeModel()

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", from_pretrained)
    model = load_model("/models/glm-4-9b-chat-hf", device=torch.device("cuda:0"), dtype=torch.bfloat16)
    assert isinstance(model, FakeModel)
    assert seen == {
        "source": "/models/glm-4-9b-chat-hf", "dtype": torch.bfloat16, "trust_remote_code": False,
        "device_map": "cuda:0",
    }
