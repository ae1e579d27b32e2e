"""The vision glm backend's GPU fast path for real: static KV cache + CUDA graphs, rows joining.

Skipped without CUDA (CI has none); on a GPU machine run
``python -m pytest tests/vision/test_glm_cuda.py``. The same scenarios run on the CPU in
``test_glm_joining.py`` (the static cache stepped eagerly there, which is the step the
graphs capture); here the captured graphs must give the tokens of the dynamic cache.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from vision.backends.glm import GlmBackend

from tests.support.tiny_models import GLM46V_TINY, tiny_model_path
from tests.vision import test_glm_joining as joining_tests
from tests.vision.test_glm_joining import REQUESTS, SCENARIOS, JoiningSink, alone, load

token_ids = joining_tests.token_ids  # the CPU tests' fixture, by name

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def gpu_backends() -> dict[str, GlmBackend]:
    path = tiny_model_path(GLM46V_TINY)
    # float32 so that both paths compute the same numbers; the service runs bf16.
    common: dict[str, Any] = {
        "device": "cuda", "dtype": "float32", "kv_cache_max_len": 512, "kv_cache_gib": 0.5,
    }
    return {
        "cuda-dynamic": load(path, static_kv="off", **common),
        "cuda-graphs": load(path, **common),  # static_kv=auto: on, on CUDA
    }


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_graphs_replay_the_dynamic_tokens_with_image_rows_joining(
    gpu_backends: dict[str, GlmBackend], token_ids: dict[int, list[int]], scenario: str
) -> None:
    dynamic, graphs = gpu_backends["cuda-dynamic"], gpu_backends["cuda-graphs"]
    kv = graphs.static_kv
    assert dynamic.static_kv is None
    assert kv is not None and kv.runner is not None, "static cache or capture failed (see the log)"
    assert kv.step_name == "compiled"  # the text model's written-out step, compiled (fused_step)
    before = kv.graph_steps
    first, arrivals = SCENARIOS[scenario]
    names = first + [name for _, joiners in sorted(arrivals.items()) for name in joiners]
    expected = [alone(dynamic, "cuda-dynamic", name, token_ids)[0] for name in names]
    token_ids.clear()
    sink = JoiningSink(
        len(names), {call: [REQUESTS[name] for name in joiners] for call, joiners in arrivals.items()}
    )
    graphs.generate([REQUESTS[name] for name in first], sink)
    assert not sink.failed, sink.failed
    assert [token_ids[i] for i in range(len(names))] == expected
    assert kv.graph_steps > before and kv.eager_steps == 0
