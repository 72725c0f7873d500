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
        path = resolve(root, rel, self.follow_symlinks)
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

    def _serve(self, req: "Request", fd: int, st: os.stat_result, path: str) -> None:
        size = st.st_size
        mtime = st.st_mtime
        etag = make_etag(st.st_mtime_ns, size)
        validators = [
            (b"Last-Modified", http_date(mtime).encode()),
            (b"ETag", etag.encode()),
        ]
        verdict = evaluate(req.method, req.header, etag, mtime)
        if verdict is not None:
            os.close(fd)
            if verdict == 304:
                req.respond(304, validators)
            else:
                req.error(verdict)
            return
        content_type = self.mime.guess(path)
        headers = [(b"Content-Type", content_type.encode()), *validators]
        if self.resume:
            headers.append((b"Accept-Ranges", b"bytes"))
            range_header = req.header(b"range")
            if (
                range_header is not None and req.method == "GET"
                and if_range_allows(req.header(b"if-range"), etag, mtime)
            ):
                try:
                    ranges = parse_range(range_header.decode("latin-1"), size)
                except Unsatisfiable:
                    os.close(fd)
                    req.error(416, headers=[(b"Content-Range", b"bytes */%d" % size)])
                    return
                if ranges:
                    self._serve_ranges(req, fd, headers, ranges, size, content_type)
                    return
        headers.append((b"Content-Length", b"%d" % size))
        req.start_response(200, headers)
        req.sendfile(fd, 0, size)
        req.end()

    @staticmethod
    def _serve_ranges(req, fd, headers, ranges, size, content_type) -> None:
        if len(ranges) == 1:
            first, last = ranges[0]
            headers.append((b"Content-Range", content_range(first, last, size).encode()))
            headers.append((b"Content-Length", b"%d" % (last - first + 1)))
            req.start_response(206, headers)
            req.sendfile(fd, first, last - first + 1)
            req.end()
            return
        # A fresh boundary per response: a fixed one could occur inside the file.
        boundary = secrets.token_hex(12)
        parts, closing, total = multipart_byteranges(ranges, size, content_type, boundary)
        headers[0] = (b"Content-Type", b"multipart/byteranges; boundary=" + boundary.encode())
        headers.append((b"Content-Length", b"%d" % total))
        req.start_response(206, headers)
        last_index = len(parts) - 1
        for index, (prefix, offset, count) in enumerate(parts):
            req.write(prefix)
            req.sendfile(fd, offset, count, close=index == last_index)
        req.write(closing)
        req.end()
