"""TLS on a stream: the handshake, reads and writes through ``ssl``, files in chunks.

A :class:`TlsLayer` is given to a :class:`~monkey_py.http.stream.Stream`. It wraps the
stream's socket in the standard library's non-blocking ``ssl.SSLSocket`` (OpenSSL reads
and writes the socket itself; callgrind counted about 61,000 instructions per 8 KB
keep-alive exchange on the server side, against 86,000 for an ``ssl.SSLObject`` with
``MemoryBIO`` pairs whose bytes Python carries to the socket) and puts its own ``recv``/``send`` in the stream's place, so the stream's
queue, backpressure and deadline work unchanged:

- the handshake is the stream's *setup* step: it gets the stream's events until done,
  waiting for reads or writes as OpenSSL asks, and never blocks the loop;
- ``ssl``'s "want read"/"want write" become the would-block the stream already handles;
  a write that had to wait is retried with the same bytes, as OpenSSL requires;
- bytes OpenSSL has decrypted but not handed over raise no event, so a read takes them
  all at once;
- a file cannot go through ``sendfile`` on a TLS socket: it is read in bounded chunks,
  each only when the socket has taken the one before (backpressure).

On the server side the layer can first *sniff*: a TLS connection starts with a
handshake record (byte 0x16); anything else is a client speaking plain HTTP to a TLS
port, and the stream's protocol is told (``plain_on_tls_port()``) so that it can answer
it in plain text.
"""

from __future__ import annotations

import os
import re
import socket
import ssl

from ..loop import EVENT_READ, EVENT_WRITE

FILE_CHUNK = 64 * 1024
HANDSHAKE_RECORD = 0x16
_WOULD_BLOCK = (ssl.SSLWantReadError, ssl.SSLWantWriteError)
# "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)": the words in between.
_SSL_MESSAGE = re.compile(r"(?:\[\w+: \w+\] )?(.*?)(?: \(_ssl\.c:\d+\))?")


def describe_error(exc: OSError) -> str:
    """What went wrong, for a log line: ``certificate verify failed: Hostname
    mismatch, ...``, ``wrong version number``, ``Connection reset by peer``."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message.rstrip('.')}"
    text = exc.strerror or str(exc)
    if isinstance(exc, ssl.SSLError):
        text = _SSL_MESSAGE.fullmatch(text).group(1)
    return text


class TlsLayer:
    """TLS for one stream, as server (``server_side``) or client (``server_hostname``:
    the name sent as SNI, none for an IP address, and checked against the certificate;
    ``session``: an ``ssl.SSLSession`` of an earlier connection to resume)."""

    __slots__ = ("stream", "context", "server_side", "server_hostname", "session", "sock")

    def __init__(self, stream, context: ssl.SSLContext, server_side: bool,
                 server_hostname: str | None = None,
                 session: ssl.SSLSession | None = None) -> None:
        self.stream = stream
        self.context = context
        self.server_side = server_side
        self.server_hostname = server_hostname
        self.session = session
        self.sock: ssl.SSLSocket | None = None

    @property
    def started(self) -> bool:
        """Whether the handshake has begun (the socket is wrapped)."""
        return self.sock is not None

    # -- starting -----------------------------------------------------------------------
    def sniff(self) -> None:
        """Server side: look at the first byte before starting (the stream's setup)."""
        stream = self.stream
        stream.tls = self
        stream.setup = self._sniffed
        stream.setup_mask = EVENT_READ
        stream.update()

    def _sniffed(self) -> None:
        stream = self.stream
        try:
            first = stream.sock.recv(1, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            stream.lost(exc)
            return
        if first and first[0] == HANDSHAKE_RECORD:
            self.start()
            return
        # Plain bytes (or the end): the stream goes on without TLS.
        stream.tls = None
        stream.setup = None
        stream.update()
        if first:
            stream.protocol.plain_on_tls_port()
        stream.on_event(EVENT_READ)

    def start(self) -> None:
        """Wrap the stream's socket and begin the handshake (the stream's setup)."""
        stream = self.stream
        stream.tls = self
        if stream.mask:
            # The selector knows the socket object, which wrapping replaces.
            stream.loop.remove(stream.sock)
            stream.mask = 0
        sock = self.sock = self.context.wrap_socket(
            stream.sock, server_side=self.server_side, do_handshake_on_connect=False,
            server_hostname=self.server_hostname, session=self.session)
        stream.sock = sock
        stream._recv = self.recv
        stream._send = self.send
        stream.setup = self._handshake
        stream.setup_mask = EVENT_READ | EVENT_WRITE
        self._handshake()

    def adopt(self, sock: ssl.SSLSocket) -> None:
        """Carry on a TLS socket whose handshake is done: a stream made on a socket that
        another stream detached does this itself."""
        stream = self.stream
        stream.tls = self
        self.sock = sock
        stream._recv = self.recv
        stream._send = self.send

    def _handshake(self) -> None:
        stream = self.stream
        try:
            self.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._wait_for(EVENT_READ)
            return
        except ssl.SSLWantWriteError:
            self._wait_for(EVENT_WRITE)
            return
        except (ssl.SSLError, OSError) as exc:
            # A client's protocol reports the failure of its own connection.
            stream.lost(exc, report=self.server_side)
            return
        stream.setup = None
        stream.update()
        if not self.server_side:
            stream.protocol.connected()
        elif self.sock.pending():
            stream.on_event(EVENT_READ)

    def _wait_for(self, mask: int) -> None:
        stream = self.stream
        if mask != stream.setup_mask or not stream.mask:
            stream.setup_mask = mask
            stream.update()

    # -- data -------------------------------------------------------------------------------
    def recv(self, size: int) -> bytes:
        """What OpenSSL can hand over now, buffered records included."""
        sock = self.sock
        try:
            data = sock.recv(size)
        except _WOULD_BLOCK:
            raise BlockingIOError from None
        pending = sock.pending()
        if pending and data:
            parts = [data]
            while pending:
                parts.append(sock.recv(pending))
                pending = sock.pending()
            data = b"".join(parts)
        return data

    def send(self, data, flags: int = 0) -> int:
        """Encrypt and send ``data``: all of it, or would-block (retry with the same)."""
        try:
            return self.sock.send(data)
        except _WOULD_BLOCK:
            raise BlockingIOError from None

    def send_file(self, chunk) -> int:
        """Send the next piece of a file slice; the bytes it counts as sent."""
        data = chunk.pending
        if data is None:
            data = os.pread(chunk.fd, min(chunk.remaining, FILE_CHUNK), chunk.offset)
            if not data:
                return 0  # the stream reports a file shorter than announced
            chunk.pending = data
        sent = self.send(data)
        chunk.pending = None
        return sent
