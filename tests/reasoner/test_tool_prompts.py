"""Tools, earlier calls and tool results reach the prompt through the checkpoint's chat template."""

from __future__ import annotations

from typing import Any

import pytest
from flashsight_common.schemas import ChatCompletionRequest
from modelserver.tools import detect_format, prompt_style, tool_request_of
from reasoner.backends.prompting import encode_prompt

from tests.support.tiny_models import GLM4_CHAT_TINY, tiny_model_path

transformers = pytest.importorskip("transformers")

# SmolLM2-135M-Instruct's template (ChatML, no tools), as the embedded model ships it.
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful AI assistant named SmolLM, "
    "trained by Hugging Face<|im_end|>\\n' }}"
    "{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
BODY: dict[str, Any] = {
    "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "18 C, sunny"},
    ],
    "tools": [WEATHER],
}


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return transformers.AutoTokenizer.from_pretrained(tiny_model_path(GLM4_CHAT_TINY))


def rendered(tokenizer: Any, **changes: Any) -> str:
    body = ChatCompletionRequest.model_validate({**BODY, **changes})
    fmt = detect_format(tokenizer.chat_template)
    ids = encode_prompt(
        tokenizer,
        body.messages,
        tools=tool_request_of(body),
        tool_style=prompt_style(fmt, tokenizer.chat_template),
    )
    return str(tokenizer.decode(ids))


def test_glm4_chat_gets_its_own_tool_layout(tokenizer: Any) -> None:
    prompt = rendered(tokenizer)
    assert (
        "# 可用工具" in prompt
        and "## get_weather" in prompt
        and '"description": "Weather in a city"' in prompt
    )
    assert '<|assistant|>get_weather\n{"city": "Paris"}' in prompt  # the earlier call, as GLM-4 writes one
    assert "<|observation|>\n18 C, sunny" in prompt and prompt.endswith("<|assistant|>")


def test_tool_choice_none_leaves_the_tools_out_but_keeps_the_history(tokenizer: Any) -> None:
    prompt = rendered(tokenizer, tool_choice="none")
    assert "可用工具" not in prompt and "<|observation|>\n18 C, sunny" in prompt


def test_a_template_without_tools_gets_them_written_out(tokenizer: Any) -> None:
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_model_path(GLM4_CHAT_TINY))
    tokenizer.chat_template = SMOLLM2_TEMPLATE
    prompt = rendered(tokenizer)
    assert prompt.startswith("<|im_start|>system\nYou can call functions.")
    assert '{"name": "get_weather", "description": "Weather in a city"' in prompt
    assert (
        '<|im_start|>assistant\n<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}'
        "</tool_call>" in prompt
    )
    assert "<|im_start|>user\nThe function get_weather returned:\n18 C, sunny" in prompt
