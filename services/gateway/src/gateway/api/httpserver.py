"""uvicorn's httptools protocol with h11's guard: request line + headers capped in bytes and count.

h11 refuses a request whose line and headers outgrow ``h11_max_incomplete_event_size``,
so a client trickling an endless header cannot make the gateway buffer it forever; the
httptools protocol has no such cap. But h11 is pure Python and httptools is C: through
the gateway, httptools serves about a quarter more requests per second at concurrency
32 (docs/performance.md). This subclass refuses a head past the cap with 431 and closes,
checked two ways, because httptools reports a head in pieces:

- every complete piece (the URL, each header) is measured as the parser hands it over,
  so a head that arrives in one read, many tiny headers, or a pipelined second request
  are all measured exactly (their piece sizes, not the size of a read);
- the bytes received while a head is still incomplete are counted per read, so one
  endless header trickled in small reads is refused before httptools has buffered more
  than the cap plus one read.

At most :data:`MAX_HEADER_COUNT` headers are accepted per request. A request line with
another HTTP version than 1.0/1.1 (``HTTP/2.0`` as text, or none) is answered 505, and an
``Upgrade`` other than WebSocket is ignored: answered, then the connection is closed.
"""

from __future__ import annotations

import json
from asyncio.events import TimerHandle

import httptools
from flashsight_common.errors import error_body
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

DEFAULT_MAX_HEADER_BYTES = 16 * 1024  # h11's own default
MAX_HEADER_COUNT = 100  # what nginx and Node allow by default (and far more than any client sends)
HEADER_OVERHEAD = 4  # ": " and CRLF around each header
SUPPORTED_HTTP_VERSIONS = frozenset({"1.0", "1.1"})
LINGER_S = 2.0  # how long a refused client may keep sending before the socket is closed


class HeadRefused(Exception):
    """Raised inside a parser callback to stop parsing a request head the gateway will not take."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class HeaderCappedHttpToolsProtocol(HttpToolsProtocol):
    """httptools, refusing requests whose line + headers exceed uvicorn's ``h11_max_incomplete_event_size``.

    The cap is read from uvicorn's own setting for h11, so ``uvicorn.run(http=ThisClass,
    h11_max_incomplete_event_size=N)`` caps both parsers alike (and the class stays
    importable by name, as uvicorn's worker processes need).
    """

    _awaiting_headers = True
    _unparsed_bytes = 0  # bytes of reads that began while a head was incomplete
    _head_bytes = 0  # exact: complete pieces (URL, headers) of the current head
    _header_count = 0

    @property
    def max_header_bytes(self) -> int:
        return self.config.h11_max_incomplete_event_size or DEFAULT_MAX_HEADER_BYTES

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None:
            return  # refused: what the client still sends is discarded until it reads the answer
        if self._awaiting_headers:
            self._unparsed_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            refused = exc.__context__
            if not isinstance(refused, HeadRefused):
                raise  # pragma: no cover - a bug in a callback, as uvicorn would see it
            self.logger.warning("Refused a request head: %s", refused.message)
            self.refuse(refused.status, refused.message)
            return
        except httptools.HttpParserError:
            self.logger.warning("Invalid HTTP request received.")
            self.refuse(400, "invalid HTTP request")
            return
        except httptools.HttpParserUpgrade:
            self.on_upgrade()
            return
        # Checked after parsing: a read that completes the headers may carry body bytes too.
        if self._awaiting_headers and self._unparsed_bytes > self.max_header_bytes:
            self.logger.warning("Request line and headers exceed %d bytes.", self.max_header_bytes)
            self.refuse(431, f"request line and headers exceed {self.max_header_bytes} bytes")

    def on_upgrade(self) -> None:
        """The parser stopped at an ``Upgrade`` request: WebSocket as uvicorn does; others ignored.

        httptools parses nothing after an upgrade request, so any other upgrade (``h2c``)
        used to leave the connection open with later requests silently dropped. The request
        is answered as plain HTTP/1.1 (a server may ignore ``Upgrade``) and the connection
        closes after it, so a client sends its next request on a fresh one.
        """
        if self._should_upgrade():
            self.handle_websocket_upgrade()
            return
        if self.cycle is None:
            self.transport.close()
            return
        self.cycle.keep_alive = False
        if self.cycle.more_body:  # an upgrade request carries no body the gateway will read
            self.cycle.more_body = False
            self.cycle.message_event.set()
        if self.cycle.response_complete:
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self._grow_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        if self._header_count > MAX_HEADER_COUNT:
            raise HeadRefused(431, f"more than {MAX_HEADER_COUNT} request headers")
        self._grow_head(len(name) + len(value) + HEADER_OVERHEAD)
        super().on_header(name, value)

    def _grow_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.max_header_bytes:
            raise HeadRefused(431, f"request line and headers exceed {self.max_header_bytes} bytes")

    def on_headers_complete(self) -> None:
        version = self.parser.get_http_version()
        if version not in SUPPORTED_HTTP_VERSIONS:  # "2.0" spoken as text, or no version at all (0.9)
            raise HeadRefused(505, f"HTTP/{version} is not supported; send HTTP/1.1 (or 1.0) requests")
        self._awaiting_headers = False
        self._unparsed_bytes = self._head_bytes = self._header_count = 0
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._awaiting_headers = True  # a pipelined or keep-alive request comes next
        super().on_message_complete()

    _deferred_refusal: tuple[int, str] | None = None

    def refuse(self, status: int, message: str, *, current: bool = False) -> None:
        """Answer ``status`` with an OpenAI-shaped error body and close the connection.

        Responses go out in request order: while an earlier (pipelined) request is still
        being answered, reading stops and the refusal follows its response. ``current``:
        the refusal answers the request in progress itself (its app sees a disconnect).
        """
        if self.transport.is_closing():
            return
        if current and self.cycle is not None:
            self.cycle.disconnected = True  # its app's receive() says http.disconnect, its send() is ignored
            self.cycle.message_event.set()
        elif self.cycle is not None and not self.cycle.response_complete:
            self._deferred_refusal = (status, message)
            self.flow.pause_reading()
            return
        body = json.dumps(error_body(message, type="invalid_request_error")).encode()
        head = [STATUS_LINE[status]]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self._linger()

    _lingering: TimerHandle | None = None

    def _linger(self) -> None:
        """Close after the client read the refusal (lingering close, as nginx does).

        Closing a socket with unread request bytes in it sends a reset, which makes the
        client's kernel drop the refusal before it is read. So: send FIN, discard what
        still arrives, and close when the client does or after :data:`LINGER_S`.
        """
        if not self.transport.can_write_eof():
            self.transport.close()
            return
        self.transport.write_eof()
        self.flow.resume_reading()
        self._lingering = self.loop.call_later(LINGER_S, self.transport.close)

    def eof_received(self) -> None:
        if self._lingering is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lingering is not None:
            self._lingering.cancel()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._deferred_refusal is not None:
            status, message = self._deferred_refusal
            self._deferred_refusal = None
            self._unset_keepalive_if_required()
            self.refuse(status, message)
