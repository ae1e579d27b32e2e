"""The GPU fast path for real: CUDA graphs captured and replayed give the tokens of the eager path.

Skipped without CUDA (CI has none); run on a GPU machine with
``python -m pytest tests/modelserver/test_cuda_graphs.py`` (``bench/engine_gpu.py`` measures
the speed). The start-up choices (which device gets what, the budget, the fallbacks) are
tested on the CPU in ``test_static_kv.py``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

from modelserver.cuda_graphs import prepare_static_kv  # noqa: E402

from tests.modelserver.test_decoding import GREEDY, run  # noqa: E402
from tests.modelserver.test_static_kv import assert_joiners_decode_as_alone  # noqa: E402
from tests.support.tiny_models import GLM4_CHAT_TINY, tiny_model_path  # noqa: E402


def settings(**overrides: Any) -> SimpleNamespace:
    values = {
        "static_kv": "auto",
        "cuda_graphs": True,
        "kv_cache_gib": 0.5,
        "kv_cache_max_len": 300,
        "max_batch_size": 4,
        "decode_step": "auto",
    }
    return SimpleNamespace(**{**values, **overrides})


@pytest.fixture(scope="module")
def glm() -> Any:
    path = tiny_model_path(GLM4_CHAT_TINY)
    model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, device_map="cuda")
    return model.eval()


@pytest.fixture(scope="module")
def glm_tokenizer() -> Any:
    return transformers.AutoTokenizer.from_pretrained(tiny_model_path(GLM4_CHAT_TINY))


def test_graphs_replay_the_eager_tokens_with_rows_joining_and_leaving(glm, glm_tokenizer) -> None:
    texts = ["Why is the total wrong?", "订单号", "a b c d e f g", "Say hello."]
    prompts = [glm_tokenizer.encode(t, add_special_tokens=False) for t in texts]
    kv = prepare_static_kv(glm, settings(), context=4096)
    assert kv is not None and kv.runner is not None, "capture failed (see the log)"
    assert kv.step_name == "compiled"  # the written-out step, compiled before the capture (fused_step)
    assert_joiners_decode_as_alone(glm, glm_tokenizer, prompts, kv)
    assert kv.graph_steps > 0 and kv.eager_steps == 0


def test_graphs_off_decodes_eagerly_in_the_static_cache(glm, glm_tokenizer) -> None:
    kv = prepare_static_kv(glm, settings(cuda_graphs=False), context=4096)
    assert kv is not None and kv.runner is None
    prompt = glm_tokenizer.encode("Say hello.", add_special_tokens=False)
    results, _ = run(glm, glm_tokenizer, [prompt], [GREEDY], static_kv=kv)
    assert results[0].token_ids == run(glm, glm_tokenizer, [prompt], [GREEDY])[0][0].token_ids
    assert kv.eager_steps > 0 and kv.graph_steps == 0
