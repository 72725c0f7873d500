"""What a worker does with requests: virtual hosts, the stage hooks, the static handler."""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass

from . import __version__
from .http.connection import Connection
from .http.request import Request
from .http.status import DateHeader, error_page
from .loop import EventLoop
from .pluginmanager import StageHooks
from .static.handler import StaticHandler

log = logging.getLogger(__name__)

MAX_ERROR_PAGE = 256 * 1024
HTML = b"text/html; charset=utf-8"


def _has_unread_input(sock) -> bool:
    """True when the client sent bytes the server has not read yet (EOF is not input)."""
    try:
        return bool(sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
    except OSError:
        return False


@dataclass(frozen=True)
class ConnectionParams:
    """Limits and timeouts of client connections, from ``[SERVER]``."""

    timeout: float
    keepalive_timeout: float
    max_keepalive_requests: int
    max_request_size: int
    # What the server calls itself: "Monkey/<version>", or "Monkey" with HideVersion.
    product: str
    server_header: bytes
    # Responses after which the next one may still keep the connection (0: KeepAlive Off).
    last_keepalive_request: int

    @classmethod
    def from_config(cls, server) -> "ConnectionParams":
        product = "Monkey" if server.hide_version else f"Monkey/{__version__}"
        return cls(
            timeout=server.timeout,
            keepalive_timeout=server.keepalive_timeout,
            max_keepalive_requests=server.max_keepalive_request,
            max_request_size=server.max_request_size,
            product=product,
            server_header=b"Server: %s\r\n" % product.encode(),
            last_keepalive_request=(
                server.max_keepalive_request - 1 if server.keepalive else 0),
        )


class VirtualHosts:
    """Host header to site; the first site answers every host no other site names.

    Answers are remembered per Host value (a bounded memo): most requests name one of a
    few hosts, port included.
    """

    MEMO_SIZE = 1024

    def __init__(self, sites) -> None:
        self.default = sites[0]
        self._by_name: dict[bytes, object] = {}
        for site in sites:
            for name in site.server_names:
                self._by_name[name.encode("idna" if not name.isascii() else "ascii")] = site
        self._memo: dict[bytes, object] = {}

    def resolve(self, host: bytes):
        site = self._memo.get(host)
        if site is None:
            site = self._by_name.get(host)
            if site is None and b":" in host:
                site = self._by_name.get(
                    host.rsplit(b":", 1)[0] if not host.endswith(b"]") else host)
            site = site or self.default
            if len(self._memo) >= self.MEMO_SIZE:
                self._memo.clear()
            self._memo[host] = site
        return site


class Server:
    """The request side of one worker: owns the connections and routes requests."""

    def __init__(self, config, pm, loop: EventLoop) -> None:
        self.config = config
        self.loop = loop
        self.params = ConnectionParams.from_config(config.server)
        self.vhosts = VirtualHosts(config.sites)
        self.default_site = self.vhosts.default
        self.hooks = StageHooks(pm)
        self.static = StaticHandler(config.server, loop)
        self.date = DateHeader(loop)
        # What built-in pages end with (ServerSignature): the Server header's product.
        self.signature = self.params.product if config.server.server_signature else ""
        self.draining = False
        self.connections: set[Connection] = set()
        # Called when draining and the last connection closes.
        self.on_empty = None
        self._error_pages = self._load_error_pages(config.sites)

    # -- connections --------------------------------------------------------------
    def accept(self, sock, peer, tls=None) -> None:
        """A new client connection; ``tls``: the listener's TLS context (None: plain)."""
        conn = Connection(sock, peer, self)
        if self.hooks.accepted is not None:
            try:
                refused = self.hooks.accepted(conn) is False
            except Exception as exc:
                self.hooks.report(exc, "at connection accepted")
                refused = True
            if refused:
                sock.close()
                return
        self.connections.add(conn)
        conn.start(tls)

    def connection_closed(self, conn: Connection) -> None:
        self.connections.discard(conn)
        if self.hooks.closed is not None:
            try:
                self.hooks.closed(conn)
            except Exception as exc:
                self.hooks.report(exc, "at connection closed")
        if self.draining and not self.connections and self.on_empty is not None:
            self.on_empty()

    def drain(self) -> None:
        """Stop keeping connections alive; close the idle ones now.

        A connection that has not sent its first request yet is not idle: its client
        just connected and is owed an answer (it gets one, with ``Connection: close``).
        Nor is one whose next request is already waiting in the socket, unread.
        """
        self.draining = True
        for conn in list(self.connections):
            if (
                conn.requests and conn.current is None and not conn.parser.in_message
                and not conn.parser.ready and not _has_unread_input(conn.sock)
            ):
                conn.close()

    # -- requests -----------------------------------------------------------------
    def dispatch(self, req: Request) -> None:
        site = req.site = self.vhosts.resolve(req.host)
        hooks = self.hooks
        try:
            if hooks.received is not None and hooks.received(req):
                return
            if site.redirect:
                # As Monkey: an empty body, the Location says it all.
                target = site.redirect.rstrip("/").encode() + req.target
                req.respond(301, [(b"Location", target)])
                return
            if site.handlers:
                path = req.path.decode("latin-1")
                for rule in site.handlers:
                    if rule.pattern.search(path) and hooks.call_plugin_handler(
                        rule.plugin, req, rule.params
                    ):
                        return
            if hooks.handler is not None and hooks.handler(req, []):
                return
        except Exception as exc:
            hooks.report(exc, f"handling {req.method} {req.target.decode('latin-1')}")
            self.internal_error(req)
            return
        try:
            self.static.handle(req)
        except Exception:
            # A bug here must not leave the client waiting on a request nobody owns.
            log.exception("the static file handler failed on %s %s", req.method,
                          req.target.decode("latin-1"))
            self.internal_error(req)

    def internal_error(self, req: Request) -> None:
        """Answer 500 if nothing was sent yet, otherwise cut the response."""
        if req.completed or req.conn is None:
            return
        if req.response_started:
            req.abort()
        else:
            req.keep_alive = False
            req.error(500)

    def response_sent(self, req: Request) -> None:
        if self.hooks.sent is not None:
            try:
                self.hooks.sent(req)
            except Exception as exc:
                self.hooks.report(exc, "at response sent")

    # -- error pages ----------------------------------------------------------------
    def error_body(self, site, status: int, detail: str, target: bytes = b""
                   ) -> tuple[bytes, bytes]:
        """The site's ``[ERROR_PAGES]`` file for ``status``, else the built-in page."""
        page = self._error_pages.get((id(site), status))
        if page is not None:
            return page
        return error_page(status, detail, target, self.signature), HTML

    def _load_error_pages(self, sites) -> dict:
        pages = {}
        for site in sites:
            for status, path in site.error_pages.items():
                try:
                    with open(path, "rb") as f:
                        body = f.read(MAX_ERROR_PAGE + 1)
                except OSError as exc:
                    log.error("error page %s for %d in site %s unreadable: %s",
                              path, status, site.name, exc)
                    continue
                if len(body) > MAX_ERROR_PAGE:
                    log.error("error page %s is over %d bytes; using the built-in page",
                              path, MAX_ERROR_PAGE)
                    continue
                pages[(id(site), status)] = (body, self.static.mime.guess(str(path)).encode())
        return pages
