"""Tool calling in the model services, the OpenAI way, with calls made valid by the grammar.

How a request with ``tools`` is served (each step its own module):

1. :mod:`~modelserver.tools.request`: the request's functions, ``tool_choice`` and
   ``parallel_tool_calls`` as a :class:`ToolRequest` (None for ``tool_choice: "none"``:
   the model answers in text, and tools are left out of the prompt).
2. :mod:`~modelserver.tools.prompt`: the tool list, earlier calls and tool results go into
   the prompt through the checkpoint's chat template (``tools=`` where the template takes
   it; GLM-4's own layout; or a written-out fallback for templates without tools).
3. :mod:`~modelserver.tools.formats`: the call syntax of the model family (``hermes``,
   ``glm4``, ``glm45``) and the xgrammar structural tag that enforces it while decoding:
   the function name comes from a fixed list and the arguments follow that function's
   ``parameters`` schema, so even SmolLM2-135M writes calls that parse and validate.
   ``auto`` = free text in which the format's trigger (``<tool_call>``) opens a call that
   must then be complete; ``required`` = calls only; a named function = exactly that call.
4. :mod:`~modelserver.tools.parser` / :mod:`~modelserver.tools.output`: the decoded text
   split back into ``content`` and ``tool_calls``, or streamed as deltas while it is
   decoded (a call's name as soon as it is written, its arguments fragment by fragment,
   re-encoded by :mod:`~modelserver.tools.arguments` so they join to exactly the
   unstreamed ``arguments``); finish reason ``tool_calls``.

A backend opts in by exposing ``tool_format`` (a :class:`ToolFormat`); the routes refuse
``tools`` with a 400 on a backend without one (e.g. vision's ocr-lite), never drop them.
"""

from modelserver.tools.formats import TOOL_FORMATS, ParsedCall, ToolFormat, detect_format
from modelserver.tools.output import ToolAnswer, ToolDeltaWriter, final_finish_reason, split_answer
from modelserver.tools.prompt import prompt_style, with_tools
from modelserver.tools.request import ToolRequest, tool_request_of

__all__ = [
    "TOOL_FORMATS",
    "ParsedCall",
    "ToolAnswer",
    "ToolDeltaWriter",
    "ToolFormat",
    "ToolRequest",
    "detect_format",
    "final_finish_reason",
    "prompt_style",
    "split_answer",
    "tool_request_of",
    "with_tools",
]
