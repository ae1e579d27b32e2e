"""LangChain's standard chat-model integration suite, ``ChatOpenAI`` against the real local stack.

``langchain-tests``' :class:`ChatModelIntegrationTests` is what LangChain runs against every
chat-model integration; here the integration is the stock ``langchain_openai.ChatOpenAI``
pointed at the gateway, as a LangChain user would point it. The stack is the embedded one
(real Redis, vision ``ocr-lite``, the reasoner's SmolLM2-135M, the gateway), started once
for the module. A question without an image goes to the reasoner, so most tests talk to
SmolLM2 through the gateway; tool calls and structured output are grammar-enforced there.

Tests that do not run here, and why (the capability properties below say the same):

- ``test_*_with_model_override``: the gateway's ``model`` ids pick a route (``auto``,
  ``direct``, ``cascade``) and the response names the model that really answered
  (docs/api.md), so "the requested id appears in ``model_name``" cannot hold by design.
- ``test_image_inputs`` runs with a generated diagram instead of the suite's download
  (no public internet here); its third request, an ``https://`` image URL, is left out
  (``supports_image_urls``): the gateway would have to fetch it from the internet.
- ``test_pdf_inputs``, ``test_audio_inputs``, ``test_pdf_tool_message``: FlashSight takes
  text and images only. ``test_image_tool_message``: OpenAI's chat API has no image parts
  in tool messages. ``test_anthropic_inputs``: Anthropic-format tools and thinking blocks
  are not OpenAI's wire format. ``test_stream_time``: a VCR-recorded benchmark, for
  hosted APIs.

Expected failures (``xfail``, not strict), each the 135M embedded model's limit rather than
the gateway's; the guarantee the gateway does give is checked by a test of this class:

- ``test_json_mode``: ``json_object`` mode guarantees JSON, not which keys; the model
  leaves out one the prompt asks for (``test_json_object_is_json``; ``json_schema``
  output, what ``structured_output_kwargs`` selects, is grammar-enforced and passes).
- ``test_agent_loop``: with ``tool_choice`` auto the model answers the weather question in
  prose instead of calling the tool (``test_agent_loop_with_a_required_call``).
- ``test_structured_output_pydantic_2_v1``: a ``pydantic.v1`` schema goes through function
  calling, where the model loops inside a string argument until it is cut (the same schema
  in pydantic v2 passes ``test_structured_output``).
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langchain_tests.integration_tests import ChatModelIntegrationTests
from PIL import Image, ImageDraw

from devkit.screens import font
from devkit.stack import Stack, running_stack

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    # ChatOpenAI caches one async HTTP client per base URL for the life of the process, as
    # an app with one event loop expects; the async tests share one loop for the same reason
    # (a loop per test would find the cached client's connections bound to a closed loop).
    # The mark reaches the sync tests too, where it does nothing but warn.
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.filterwarnings("ignore:.*marked with '@pytest.mark.asyncio' but it is not an async function"),
]

# The suite's image (a flow diagram on GitHub); a generated diagram stands in for it.
SUITE_IMAGE_URL = (
    "https://raw.githubusercontent.com/langchain-ai/docs/4d11d08b6b0e210bd456943f7a22febbd168b543/"
    "src/images/agentic-rag-output.png"
)


# SmolLM2's tokenizer spends several tokens on each Chinese or Japanese character: the
# customer names of this test do not fit in the default 48, and a call cut by max_tokens is
# text, not a call (docs/api.md).
TOKEN_BUDGETS = {"test_unicode_tool_call_integration": 96}


@pytest.fixture(scope="module")
def langchain_stack() -> Iterator[Stack]:
    """The embedded stack, as ``make run`` starts it; a generous reasoner budget for a loaded CPU.

    The stream deadlines are the gateway's defaults (a 10 s first token): a streamed tool call
    goes out as the reasoner decodes it, and a call that is required waits as long as an
    unstreamed one (docs/api.md).
    """
    with running_stack(
        gateway_env={"GATEWAY_REASONER_TIMEOUT_S": "120"},
        reasoner_env={"REASONER_MAX_BATCH_SIZE": "8"},
    ) as stack:
        yield stack


def diagram_png() -> bytes:
    """A small labelled flow diagram: boxes, arrows and words ocr-lite can read."""
    image = Image.new("RGB", (480, 200), "white")
    draw = ImageDraw.Draw(image)
    label = font(22, cjk=False)
    for x, word in ((20, "Query"), (180, "Retrieve"), (340, "Answer")):
        draw.rectangle((x, 70, x + 120, 130), outline="black", width=3)
        draw.text((x + 12, 86), word, fill="black", font=label)
    for x in (140, 300):
        draw.line((x, 100, x + 40, 100), fill="black", width=3)
        draw.polygon([(x + 40, 92), (x + 40, 108), (x + 48, 100)], fill="black")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


class TestChatOpenAIThroughGateway(ChatModelIntegrationTests):
    """The standard suite with ``ChatOpenAI`` at the gateway's ``/v1``."""

    gateway_url: str = ""

    @pytest.fixture(autouse=True)
    def _gateway(self, langchain_stack: Stack) -> None:
        # chat_model_params is a property the suite also reads outside the model fixture
        # (test_stop_sequence builds its own model), so the URL lives on the class.
        type(self).gateway_url = langchain_stack.url

    @pytest.fixture(autouse=True)
    def _local_suite_image(self, monkeypatch: pytest.MonkeyPatch) -> None:
        # The suite downloads its test image with httpx.get; no public internet here, so that
        # one URL is answered with a generated diagram (the suite's own tests stay unmodified:
        # test_no_overrides_DO_NOT_OVERRIDE checks that).
        png = diagram_png()
        real_get = httpx.get

        def get(url: str, *args: Any, **kwargs: Any) -> httpx.Response:
            if url == SUITE_IMAGE_URL:
                return httpx.Response(200, content=png, request=httpx.Request("GET", url))
            return real_get(url, *args, **kwargs)

        monkeypatch.setattr(httpx, "get", get)

    @pytest.fixture
    def model(self, request: pytest.FixtureRequest) -> BaseChatModel:
        # The suite's fixture, plus a bigger token budget for the tests that need one.
        params = {**self.chat_model_params, **(getattr(request, "param", None) or {})}
        budget = TOKEN_BUDGETS.get(request.node.originalname)
        return ChatOpenAI(**{**params, "max_tokens": budget} if budget else params)

    @property
    def chat_model_class(self) -> type[BaseChatModel]:
        return ChatOpenAI

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "model": "auto",
            "base_url": f"{self.gateway_url}/v1",
            "api_key": "not-needed",  # the stack runs without API keys
            "temperature": 0,
            # Short answers keep the suite quick on CPU; enough for a small JSON object.
            "max_tokens": 48,
            "timeout": 180,
            "max_retries": 0,  # a failure must show, not be retried away
            "stream_usage": True,  # a compatible server gets no usage chunk unless asked
        }

    @property
    def has_tool_choice(self) -> bool:
        return True

    @property
    def supports_json_mode(self) -> bool:
        return True

    @property
    def structured_output_kwargs(self) -> dict[str, Any]:
        # The reasoner enforces a json_schema response_format with its grammar.
        return {"method": "json_schema"}

    @property
    def supports_image_inputs(self) -> bool:
        return True

    @property
    def supports_image_urls(self) -> bool:
        return False  # the gateway fetches https:// images itself: no public internet here

    @property
    def returns_usage_metadata(self) -> bool:
        return True

    @property
    def supports_anthropic_inputs(self) -> bool:
        return False

    @property
    def supports_model_override(self) -> bool:
        return False  # model ids choose a route; the response names the model that answered

    @pytest.mark.xfail(
        strict=False,
        reason="json_object mode enforces JSON syntax, not keys: the embedded 135M model writes "
        "{\"setup\": ...} and closes the object without the 'punchline' the prompt asks for "
        "(json_schema output is grammar-enforced: test_structured_output; JSON syntax: "
        "test_json_object_is_json)",
    )
    def test_json_mode(self, model: BaseChatModel) -> None:
        super().test_json_mode(model)

    @pytest.mark.xfail(
        strict=False,
        reason="tool_choice auto lets the model choose, and the embedded 135M model answers "
        "'What is the weather in San Francisco?' in prose instead of calling get_weather; the "
        "grammar only guarantees that a call it starts is valid (the loop itself, with the call "
        "required: test_agent_loop_with_a_required_call)",
    )
    @pytest.mark.parametrize("model", [{}, {"output_version": "v1"}], indirect=True)
    def test_agent_loop(self, model: BaseChatModel) -> None:
        super().test_agent_loop(model)

    @pytest.mark.xfail(
        strict=False,
        reason="a pydantic.v1 schema makes LangChain use function calling, where the embedded "
        "135M model loops inside a string argument until max_tokens cuts the call, so no complete "
        "call comes back; the same schema as pydantic v2 goes through json_schema and passes "
        "(test_structured_output)",
    )
    def test_structured_output_pydantic_2_v1(self, model: BaseChatModel) -> None:
        super().test_structured_output_pydantic_2_v1(model)

    def test_agent_loop_with_a_required_call(self, model: BaseChatModel) -> None:
        """Beyond the suite: the agent loop when the call is required, then answered from its result."""

        @tool
        def get_weather(location: str) -> str:
            """Get the weather at a location."""
            return "It's sunny."

        question = HumanMessage("What is the weather in San Francisco, CA?")
        caller = model.bind_tools([get_weather], tool_choice="any", parallel_tool_calls=False)
        call = caller.invoke([question])
        assert isinstance(call, AIMessage) and len(call.tool_calls) == 1
        assert call.tool_calls[0]["name"] == "get_weather" and call.tool_calls[0]["args"]["location"]
        result = get_weather.invoke(call.tool_calls[0])
        assert isinstance(result, ToolMessage)
        answer = model.bind_tools([get_weather]).invoke([question, call, result])
        assert isinstance(answer, AIMessage) and (answer.text or answer.tool_calls)

    def test_json_object_is_json(self, model: BaseChatModel) -> None:
        """Beyond the suite: ``response_format: json_object`` through LangChain always parses."""
        bound = model.bind(response_format={"type": "json_object"}, max_tokens=160)
        prompt = "Describe a cat as a JSON object with 'name' and 'colour' keys."
        answer = bound.invoke(prompt)
        assert answer.response_metadata["finish_reason"] == "stop"  # closed by the model, not cut
        assert isinstance(json.loads(answer.text), dict)
        streamed = "".join(chunk.text for chunk in bound.stream(prompt))
        assert json.loads(streamed) == json.loads(answer.text)

    def test_image_reaches_vision(self, model: BaseChatModel) -> None:
        """Beyond the suite: a LangChain image block really reaches vision (ocr-lite reads its words)."""
        png = base64.b64encode(diagram_png()).decode()
        answer = model.invoke(
            [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What words are in this image?"},
                        {"type": "image", "base64": png, "mime_type": "image/png"},
                    ],
                }
            ]
        )
        assert "Retrieve" in answer.text
        assert answer.response_metadata["model_name"] == "ocr-lite"
