"""uvicorn's httptools protocol with h11's guard: request line + headers capped in bytes.

h11 refuses a request whose line and headers outgrow ``h11_max_incomplete_event_size``,
so a client trickling an endless header cannot make the gateway buffer it forever; the
httptools protocol has no such cap. But h11 is pure Python and httptools is C: through
the gateway, httptools serves about a quarter more requests per second at concurrency
32 (docs/performance.md). This subclass counts the bytes received while a request's
headers are incomplete and answers 400 and closes, as h11 does, past the cap.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_MAX_HEADER_BYTES = 16 * 1024  # h11's own default


class HeaderCappedHttpToolsProtocol(HttpToolsProtocol):
    """httptools, refusing requests whose line + headers exceed uvicorn's ``h11_max_incomplete_event_size``.

    The cap is read from uvicorn's own setting for h11, so ``uvicorn.run(http=ThisClass,
    h11_max_incomplete_event_size=N)`` caps both parsers alike (and the class stays
    importable by name, as uvicorn's worker processes need).
    """

    _awaiting_headers = True
    _header_bytes = 0

    @property
    def max_header_bytes(self) -> int:
        return self.config.h11_max_incomplete_event_size or DEFAULT_MAX_HEADER_BYTES

    def data_received(self, data: bytes) -> None:
        if self._awaiting_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        # Checked after parsing: a read that completes the headers may carry body bytes too.
        too_large = self._awaiting_headers and self._header_bytes > self.max_header_bytes
        if too_large and not self.transport.is_closing():
            self.logger.warning("Request line and headers exceed %d bytes.", self.max_header_bytes)
            self.send_400_response("Request line and headers too large.")

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._header_bytes = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._awaiting_headers = True  # a pipelined or keep-alive request comes next
        super().on_message_complete()
