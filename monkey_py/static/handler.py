"""The static file handler: the last handler of every virtual host.

Paths are decoded and normalised before any filesystem call and never leave the
DocumentRoot; bodies go out with ``os.sendfile``, never read into memory.
"""

from __future__ import annotations

import os
import secrets
import stat
from typing import TYPE_CHECKING

from .conditional import evaluate, http_date, if_range_allows, make_etag
from .mime import MimeTypes
from .paths import Forbidden, resolve, url_to_relpath
from .ranges import Unsatisfiable, content_range, multipart_byteranges, parse_range

if TYPE_CHECKING:
    from ..http.request import Request

ALLOWED = ("GET", "HEAD")
# Files whose header lines are kept ready; the cache is dropped whole when full.
META_CACHE_SIZE = 4096


class StaticHandler:
    """Serves files from each site's DocumentRoot under the ``[SERVER]`` file rules."""

    def __init__(self, server_config) -> None:
        self.index_files = list(server_config.index_files)
        self.resume = server_config.resume
        self.follow_symlinks = server_config.symlink
        self.mime = MimeTypes(server_config.default_mime_type)
        # O_NONBLOCK: opening a FIFO must not block the loop; O_NOFOLLOW closes the race
        # between the symlink check and the open for the last component.
        self._flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (
            0 if self.follow_symlinks else os.O_NOFOLLOW)
        self._roots: dict[int, str] = {}
        self._metas: dict[str, FileMeta] = {}

    def _root(self, site) -> str:
        root = self._roots.get(id(site))
        if root is None:
            root = self._roots[id(site)] = os.path.realpath(site.document_root)
        return root

    def handle(self, req: "Request") -> None:
        if req.method not in ALLOWED:
            req.error(405)
            return
        root = self._root(req.site)
        try:
            rel = url_to_relpath(req.path)
            fd, st, path = self._open(root, rel)
        except Forbidden:
            req.error(403)
            return
        except (FileNotFoundError, NotADirectoryError):
            req.error(404)
            return
        except OSError:
            req.error(403)
            return
        if stat.S_ISDIR(st.st_mode):
            os.close(fd)
            if rel and not rel.endswith("/"):
                self._redirect_to_directory(req)
                return
            fd, st, path = self._index(root, rel)
            if fd is None:
                req.error(403, "Directory listing is not allowed.")
                return
        elif rel.endswith("/"):
            # "/index.html/" names a directory that is not one.
            os.close(fd)
            req.error(404)
            return
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            req.error(403)
            return
        self._serve(req, fd, st, path)

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

    @staticmethod
    def _redirect_to_directory(req: "Request") -> None:
        location = b"http://%s%s/" % (req.host, req.path)
        if req.query is not None:
            location += b"?" + req.query
        req.respond(301, [(b"Location", location), (b"Content-Type", b"text/html")],
                    b"<html><body>Moved to <a href=\"%s\">%s</a></body></html>\n"
                    % (location, location))

    def _meta(self, st: os.stat_result, path: str) -> "FileMeta":
        """The validators and header lines of a file, rebuilt only when it changes."""
        meta = self._metas.get(path)
        if meta is None or meta.key != (st.st_ino, st.st_mtime_ns, st.st_size):
            if len(self._metas) >= META_CACHE_SIZE:
                self._metas.clear()
            meta = self._metas[path] = FileMeta(st, self.mime.guess(path), self.resume)
        return meta

    def _serve(self, req: "Request", fd: int, st: os.stat_result, path: str) -> None:
        meta = self._meta(st, path)
        size = st.st_size
        verdict = evaluate(req.method, req.header, meta.etag, meta.mtime)
        if verdict is not None:
            os.close(fd)
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
                    ranges = parse_range(range_header.decode("latin-1"), size)
                except Unsatisfiable:
                    os.close(fd)
                    req.error(416, headers=[(b"Content-Range", b"bytes */%d" % size)])
                    return
                if ranges:
                    self._serve_ranges(req, fd, meta, ranges, size)
                    return
        req.start_response(200, meta.block, length=size)
        req.sendfile(fd, 0, size)
        req.end()

    @staticmethod
    def _serve_ranges(req, fd, meta: "FileMeta", ranges, size) -> None:
        headers = [(b"Content-Type", meta.content_type.encode()), *meta.validators,
                   (b"Accept-Ranges", b"bytes")]
        if len(ranges) == 1:
            first, last = ranges[0]
            headers.append((b"Content-Range", content_range(first, last, size).encode()))
            req.start_response(206, headers, length=last - first + 1)
            req.sendfile(fd, first, last - first + 1)
            req.end()
            return
        # A fresh boundary per response: a fixed one could occur inside the file.
        boundary = secrets.token_hex(12)
        parts, closing, total = multipart_byteranges(ranges, size, meta.content_type, boundary)
        headers[0] = (b"Content-Type", b"multipart/byteranges; boundary=" + boundary.encode())
        req.start_response(206, headers, length=total)
        last_index = len(parts) - 1
        for index, (prefix, offset, count) in enumerate(parts):
            req.write(prefix)
            req.sendfile(fd, offset, count, close=index == last_index)
        req.write(closing)
        req.end()


class FileMeta:
    """What the headers of one version of a file need, computed once per version."""

    __slots__ = ("key", "etag", "mtime", "content_type", "validators", "block")

    def __init__(self, st: os.stat_result, content_type: str, resume: bool) -> None:
        self.key = (st.st_ino, st.st_mtime_ns, st.st_size)
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
