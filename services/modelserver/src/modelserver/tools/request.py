"""What a request asks of tool calling, reduced to what the grammar and the prompt need."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from flashsight_common.schemas import ChatCompletionRequest
from flashsight_common.toolcalls import FunctionDefinition, NamedToolChoice

CallMode = Literal["auto", "required", "forced"]


@dataclass(frozen=True, slots=True)
class ToolRequest:
    """The functions a request offers and how the model must use them.

    ``offered`` are all the request's functions (the prompt shows them all); ``callable``
    are those the grammar lets the model call: all of them, or only the named one when
    ``tool_choice`` names a function (``mode == "forced"``).
    """

    offered: tuple[FunctionDefinition, ...]
    mode: CallMode
    parallel: bool
    forced: str | None = None

    @property
    def callable(self) -> tuple[FunctionDefinition, ...]:
        if self.forced is None:
            return self.offered
        return tuple(f for f in self.offered if f.name == self.forced)

    def template_tools(self) -> list[dict[str, Any]]:
        """The ``tools`` list as chat templates take it (OpenAI's shape)."""
        return [{"type": "function", "function": f.model_dump(exclude_none=True)} for f in self.offered]

    def schema_of(self, name: str) -> dict[str, Any] | None:
        """The arguments schema of function ``name`` (None if it is not offered)."""
        return next((f.arguments_schema() for f in self.offered if f.name == name), None)


def tool_request_of(body: ChatCompletionRequest) -> ToolRequest | None:
    """The request's tool calling, or None when the model may not call a tool (none given, or ``none``)."""
    if not body.tools or body.tool_choice == "none":
        return None
    offered = tuple(tool.function for tool in body.tools)
    parallel = body.parallel_tool_calls is not False  # OpenAI's default is true
    choice = body.tool_choice
    if isinstance(choice, NamedToolChoice):
        return ToolRequest(offered, "forced", parallel=False, forced=choice.function.name)
    return ToolRequest(offered, "required" if choice == "required" else "auto", parallel=parallel)
