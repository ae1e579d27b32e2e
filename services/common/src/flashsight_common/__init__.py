"""What every FlashSight service shares on the wire, so the three behave as one API.

The gateway, vision and reasoner each import this package (and nothing heavier: no torch,
no transformers, since the gateway must stay light); anything here changes all three at
once, which is the point: a caller, or an operator reading the logs, sees one service.

- ``schemas``: OpenAI chat request/response/chunk models, ``/v1/models``.
- ``toolcalls``: tool calling on the wire (``tools``, ``tool_choice``, ``tool_calls``,
  ``role: "tool"`` results, streamed tool-call deltas) and the conversation rules.
- ``fields``: the field policy: which request fields are ignored (with the reason) and
  which are refused unless their value asks for nothing; unknown fields are refused.
- ``errors``: the one error body ``{"error": {"message", "type", "param", "code"}}``,
  ``ApiError`` (the base of each service's exception tree: status, body, Retry-After) and
  validation errors turned into a sentence naming the field.
- ``handlers``: the framework-level error handlers (request validation and malformed
  JSON → 400, unknown route/method → 404/405, a bug → 500) each service adds to its own
  handler table beside its own exception tree (``<service>/errors.py``).
- ``sse``: server-sent-event framing of streamed chunks.
- ``requestid``: the X-Request-ID contract (take a caller's plain id or make one, return
  it, put it in every log line of the request) and the routes' dependency reading it.
- ``bodylimit``: the request body limit, 413 in the error shape.
- ``logs``: the log line shape (text or JSON, always with the request id), so one
  request can be followed through the three services' logs.
"""
