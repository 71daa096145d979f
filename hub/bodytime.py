"""How long a request body may take: a WSGI middleware that cuts a body that stalls or drags with a 408.

The proxy in front (deploy/nginx) is what keeps slow uploads off the app's threads: it takes the whole
body first and hands it over at loopback speed. This bound is the second line, for a deployment without
that proxy or a client that reaches gunicorn directly: a body that sends nothing for `idle_s`, or is not
complete within `total_s`, is cut (408, the connection closed), and the upload code deletes what it
had written, as it does for any error. Under gunicorn the socket itself gets the remaining time as its
timeout, so even a read that would block is bounded; under other servers the check runs between reads.
"""
from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any

from werkzeug.exceptions import RequestTimeout

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class BodyTooSlow(RequestTimeout):
    """The body stalled or took longer than the deployment allows (HUB_BODY_IDLE_TIMEOUT, HUB_BODY_TIMEOUT)."""


class TimedBody:
    """wsgi.input with a deadline: each wait for data gets at most the idle time, the whole body the total.

    Under gunicorn the socket's timeout bounds each wait, and a timer shuts the socket's reading side at
    the total deadline, so a read blocked inside the server returns at once; elsewhere the bounds are
    checked between reads.
    """

    def __init__(self, inner: IO[bytes], sock: socket.socket | None, idle_s: float, total_s: float) -> None:
        self.inner, self.sock, self.idle_s = inner, sock, idle_s
        self.deadline = time.monotonic() + total_s
        self.expired = False
        self._previous = sock.gettimeout() if sock is not None else None
        self._timer: threading.Timer | None = None
        if sock is not None:
            self._timer = threading.Timer(total_s, self._expire)
            self._timer.daemon = True
            self._timer.start()

    def _expire(self) -> None:
        self.expired = True
        try:
            self.sock.shutdown(socket.SHUT_RD)  # type: ignore[union-attr]
        except OSError:
            pass

    def _call(self, read: Callable[..., Any], *args: Any) -> Any:
        remaining = self.deadline - time.monotonic()
        if self.expired or remaining <= 0:
            self.expired = True
            raise BodyTooSlow()
        if self.sock is not None:
            self.sock.settimeout(min(self.idle_s, remaining))
        started = time.monotonic()
        try:
            data = read(*args)
        except TimeoutError:  # socket.timeout: a wait past the idle time
            self.expired = True
            raise BodyTooSlow() from None
        except Exception:
            if self.expired:  # the server's "no more data" once the timer shut the socket
                raise BodyTooSlow() from None
            raise
        if self.expired or (self.sock is None and (time.monotonic() - started > self.idle_s
                                                   or time.monotonic() > self.deadline)):
            self.expired = True
            raise BodyTooSlow()
        return data

    def read(self, size: int = -1) -> bytes:
        return self._call(self.inner.read, size)

    def readline(self, size: int = -1) -> bytes:
        return self._call(self.inner.readline, size)

    def readlines(self, hint: int = -1) -> list[bytes]:
        return self._call(self.inner.readlines, hint)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line

    def restore(self) -> None:
        """Stop the timer; give the socket back as the server set it unless the body was cut."""
        if self._timer is not None:
            self._timer.cancel()
        if self.sock is not None and not self.expired:
            try:
                self.sock.settimeout(self._previous)
            except OSError:
                pass


class BodyDeadline:
    """WSGI middleware: a request with a body gets TimedBody as wsgi.input; a cut body closes the connection."""

    def __init__(self, app: WSGIApp, idle_s: float, total_s: float) -> None:
        self.app, self.idle_s, self.total_s = app, idle_s, total_s

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        has_body = environ.get("CONTENT_LENGTH") not in (None, "", "0") or \
            "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if not has_body or self.idle_s <= 0 or self.total_s <= 0:
            return self.app(environ, start_response)
        body = TimedBody(environ["wsgi.input"], environ.get("gunicorn.socket"), self.idle_s, self.total_s)
        environ["wsgi.input"] = body

        def closing_start_response(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            if body.expired:
                # The rest of the body is still on its way; nobody should wait for it.
                headers = [(k, v) for k, v in headers if k.lower() != "connection"] + [("Connection", "close")]
            return start_response(status, headers, *exc)

        try:
            return self.app(environ, closing_start_response)
        finally:
            body.restore()
