"""The static file handler: the last handler of every virtual host.

Paths are decoded and normalised before any filesystem call and never leave the
DocumentRoot. Hot files come from the open-file cache (``filecache``): small ones from
memory with their head in one write, larger ones with ``os.sendfile`` from a descriptor
kept open; a file is never read into memory whole above ``SMALL_FILE``.
"""

from __future__ import annotations

import errno
import logging
import os
import pwd
import re
import secrets
import stat
from typing import TYPE_CHECKING

from .conditional import evaluate, http_date, if_range_allows, make_etag
from .filecache import OpenFile, OpenFileCache
from .mime import MimeTypes
from .paths import Forbidden, resolve, url_to_relpath
from .ranges import Unsatisfiable, content_range, multipart_byteranges, parse_range

if TYPE_CHECKING:
    from ..http.request import Request

log = logging.getLogger(__name__)

# User names a UserDir path may name (POSIX portable names), and how many are kept.
_USER_NAME = re.compile(rb"[a-z_][a-z0-9_.-]{0,31}")
USER_MEMO = 256
# Request headers that take a request off the plain 200 path.
SPECIAL = frozenset({b"if-match", b"if-none-match", b"if-modified-since",
                     b"if-unmodified-since", b"range", b"if-range"})


class StaticHandler:
    """Serves files from each site's DocumentRoot under the ``[SERVER]`` file rules."""

    def __init__(self, server_config, loop) -> None:
        self.index_files = list(server_config.index_files)
        self.resume = server_config.resume
        self.follow_symlinks = server_config.symlink
        self.mime = MimeTypes(server_config.default_mime_type)
        self.files = OpenFileCache(loop, server_config.open_file_cache,
                                   server_config.open_file_cache_valid)
        self.user_dir = server_config.user_dir
        # User name -> the root of its pages (None: no such user), looked up once.
        self._user_roots: dict[bytes, str | None] = {}
        # O_NONBLOCK: opening a FIFO must not block the loop; O_NOFOLLOW closes the race
        # between the symlink check and the open for the last component.
        self._flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (
            0 if self.follow_symlinks else os.O_NOFOLLOW)
        self._roots: dict[int, str] = {}

    def _root(self, site) -> str:
        root = self._roots.get(id(site))
        if root is None:
            root = self._roots[id(site)] = os.path.realpath(site.document_root)
        return root

    def close(self) -> None:
        self.files.close()

    def handle(self, req: "Request") -> None:
        method = req.method
        if method != "GET" and method != "HEAD":
            if method != "POST":
                req.error(405, headers=[(b"Allow", b"GET, HEAD, POST")])
                return
            if not req.body_complete:
                # As Monkey: the body is read and thrown away, then the file is the
                # answer. A body that never arrives gets no answer: the connection's
                # Timeout closes it.
                req.read_body(_discard, lambda: self.handle(req),
                              lambda error: req.error(error.status, error.detail))
                return
        key = (id(req.site), req.path)
        entry = self.files.get(key)
        if entry is None:
            entry = self._open_entry(req, key)
            if entry is None:
                return
        for name, _ in req.headers:
            if name in SPECIAL:
                self._serve_conditional(req, entry)
                break
        else:
            self._serve(req, entry)
        self.files.served(entry)

    def _open_entry(self, req: "Request", key) -> OpenFile | None:
        """Resolve and open the request's file, answering the error if there is none."""
        path = req.path
        if self.user_dir is not None and path.startswith(b"/~"):
            root, path = self._user_root(req)
            if root is None:
                return None
        else:
            root = self._root(req.site)
        try:
            rel = url_to_relpath(path)
            fd, st, path = self._open(root, rel)
        except Forbidden:
            req.error(403)
            return None
        except (FileNotFoundError, NotADirectoryError):
            req.error(404)
            return None
        except OSError as exc:
            _answer_failed_open(req, exc)
            return None
        if stat.S_ISDIR(st.st_mode):
            os.close(fd)
            if rel and not rel.endswith("/"):
                self._redirect_to_directory(req)
                return None
            fd, st, path = self._index(root, rel)
            if fd is None:
                req.error(403, "Directory listing is not allowed.")
                return None
        elif rel.endswith("/"):
            # "/index.html/" names a directory that is not one.
            os.close(fd)
            req.error(404)
            return None
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            req.error(403)
            return None
        try:
            return self.files.keep(key, fd, st,
                                   lambda: FileMeta(st, self.mime.guess(path), self.resume))
        except OSError as exc:
            _answer_failed_open(req, exc)
            return None

    def _open(self, root: str, rel: str):
        """Open ``rel`` below ``root``: (fd, stat, path). Raises Forbidden or OSError."""
        # The last component is opened with O_NOFOLLOW: resolve need not lstat it.
        path = resolve(root, rel, self.follow_symlinks, check_last=False)
        fd = os.open(path, self._flags)
        try:
            return fd, os.fstat(fd), path
        except OSError:
            os.close(fd)
            raise

    def _index(self, root: str, rel: str):
        for name in self.index_files:
            try:
                fd, st, path = self._open(root, rel + name)
            except (Forbidden, OSError):
                continue
            if stat.S_ISREG(st.st_mode):
                return fd, st, path
            os.close(fd)
        return None, None, None

    def _user_root(self, req: "Request") -> tuple[str | None, bytes]:
        """UserDir: ``/~user/rest`` is ``rest`` below ``~user/<UserDir>``; answers 404
        (and returns None) for an unknown user, root, or a malformed name."""
        user, slash, rest = req.path[2:].partition(b"/")
        root = self._user_roots.get(user, False)
        if root is False:
            root = None
            if _USER_NAME.fullmatch(user):
                try:
                    entry = pwd.getpwnam(user.decode("ascii"))
                except KeyError:
                    entry = None
                if entry is not None and entry.pw_uid != 0:
                    root = os.path.realpath(os.path.join(entry.pw_dir, self.user_dir))
            if len(self._user_roots) >= USER_MEMO:
                self._user_roots.clear()
            self._user_roots[user] = root
        if root is None:
            req.error(404)
        elif not slash:
            self._redirect_to_directory(req)
            root = None
        return root, b"/" + rest

    @staticmethod
    def _redirect_to_directory(req: "Request") -> None:
        # As Monkey: an empty body, Location built from the Host header, port included.
        location = b"http://%s%s/" % (req.host, req.path)
        if req.query is not None:
            location += b"?" + req.query
        req.respond(301, [(b"Location", location)])

    @staticmethod
    def _serve(req: "Request", entry: OpenFile) -> None:
        """The whole file, 200."""
        if entry.body is not None:
            req.respond(200, entry.meta.block, entry.body)
            return
        req.start_response(200, entry.meta.block, length=entry.size)
        if req.method != "HEAD":
            req.sendfile(entry.fd, 0, entry.size, entry.lend())
        req.end()

    def _serve_conditional(self, req: "Request", entry: OpenFile) -> None:
        """Preconditions (304, 412), then byte ranges (206, 416), else the whole file."""
        meta = entry.meta
        verdict = evaluate(req.method, req.header, meta.etag, meta.mtime)
        if verdict is not None:
            if verdict == 304:
                req.respond(304, meta.validators)
            else:
                req.error(verdict)
            return
        if self.resume:
            range_header = req.header(b"range")
            if (
                range_header is not None and req.method == "GET"
                and if_range_allows(req.header(b"if-range"), meta.etag, meta.mtime)
            ):
                try:
                    ranges = parse_range(range_header.decode("latin-1"), entry.size)
                except Unsatisfiable:
                    req.error(416, headers=[(b"Content-Range", b"bytes */%d" % entry.size)])
                    return
                if ranges:
                    self._serve_ranges(req, entry, ranges)
                    return
        self._serve(req, entry)

    @staticmethod
    def _serve_ranges(req: "Request", entry: OpenFile, ranges) -> None:
        meta = entry.meta
        size = entry.size
        headers = [(b"Content-Type", meta.content_type.encode()), *meta.validators,
                   (b"Accept-Ranges", b"bytes")]
        if len(ranges) == 1:
            first, last = ranges[0]
            headers.append((b"Content-Range", content_range(first, last, size).encode()))
            if entry.body is not None:
                req.respond(206, headers, entry.body[first:last + 1])
                return
            req.start_response(206, headers, length=last - first + 1)
            req.sendfile(entry.fd, first, last - first + 1, entry.lend())
            req.end()
            return
        # A fresh boundary per response: a fixed one could occur inside the file.
        boundary = secrets.token_hex(12)
        parts, closing, total = multipart_byteranges(ranges, size, meta.content_type, boundary)
        headers[0] = (b"Content-Type", b"multipart/byteranges; boundary=" + boundary.encode())
        req.start_response(206, headers, length=total)
        for prefix, offset, count in parts:
            req.write(prefix)
            if entry.body is not None:
                req.write(entry.body[offset:offset + count])
            else:
                req.sendfile(entry.fd, offset, count, entry.lend())
        req.write(closing)
        req.end()


def _discard(_chunk: bytes) -> None:
    """Throw a body piece away."""


def _answer_failed_open(req: "Request", exc: OSError) -> None:
    """A file that exists could not be opened or read: 403 when it may not be (permission,
    a symbolic link with SymLink Off), 503 when the worker is out of descriptors or
    memory for a moment (logged), 500 for anything else (logged)."""
    if exc.errno in _REFUSED:
        req.error(403)
    elif exc.errno in _EXHAUSTED:
        log.error("cannot open %s: %s; answering 503", req.path.decode("latin-1"), exc)
        req.error(503, "The server is short of resources; try again in a moment.",
                  [(b"Retry-After", b"1")])
    else:
        log.error("cannot open %s: %s; answering 500", req.path.decode("latin-1"), exc)
        req.error(500)


_REFUSED = frozenset({errno.EACCES, errno.EPERM, errno.ELOOP})
_EXHAUSTED = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})


class FileMeta:
    """What the headers of one version of a file need, computed once per version."""

    __slots__ = ("etag", "mtime", "content_type", "validators", "block")

    def __init__(self, st: os.stat_result, content_type: str, resume: bool) -> None:
        self.etag = make_etag(st.st_mtime_ns, st.st_size)
        self.mtime = st.st_mtime
        self.content_type = content_type
        self.validators = [
            (b"Last-Modified", http_date(st.st_mtime).encode()),
            (b"ETag", self.etag.encode()),
        ]
        lines = [b"Content-Type: %s\r\n" % content_type.encode()]
        lines.extend(b"%s: %s\r\n" % pair for pair in self.validators)
        if resume:
            lines.append(b"Accept-Ranges: bytes\r\n")
        self.block = b"".join(lines)
