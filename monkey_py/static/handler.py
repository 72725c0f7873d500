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
        try:
            rel = url_to_relpath(req.path)
            path = resolve(self._root(req.site), rel, self.follow_symlinks)
            st = os.stat(path)
            if stat.S_ISDIR(st.st_mode):
                if rel and not rel.endswith("/"):
                    self._redirect_to_directory(req)
                    return
                path, st = self._index(req, rel)
                if path is None:
                    return
            elif rel.endswith("/"):
                # "/index.html/" names a directory that is not one.
                req.error(404)
                return
            if not stat.S_ISREG(st.st_mode):
                req.error(403)
                return
            file = open(path, "rb", buffering=0)
        except Forbidden:
            req.error(403)
            return
        except (FileNotFoundError, NotADirectoryError):
            req.error(404)
            return
        except OSError:
            req.error(403)
            return
        self._serve(req, file, path)

    def _index(self, req: "Request", rel: str):
        root = self._root(req.site)
        for name in self.index_files:
            try:
                path = resolve(root, rel + name, self.follow_symlinks)
                st = os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if stat.S_ISREG(st.st_mode):
                return path, st
        req.error(403, "Directory listing is not allowed.")
        return None, None

    @staticmethod
    def _redirect_to_directory(req: "Request") -> None:
        location = b"http://%s%s/" % (req.host, req.path)
        if req.query is not None:
            location += b"?" + req.query
        req.respond(301, [(b"Location", location), (b"Content-Type", b"text/html")],
                    b"<html><body>Moved to <a href=\"%s\">%s</a></body></html>\n"
                    % (location, location))

    def _serve(self, req: "Request", file, path: str) -> None:
        st = os.fstat(file.fileno())
        size = st.st_size
        mtime = st.st_mtime
        etag = make_etag(st.st_mtime_ns, size)
        validators = [
            (b"Last-Modified", http_date(mtime).encode()),
            (b"ETag", etag.encode()),
        ]
        verdict = evaluate(req.method, req.header, etag, mtime)
        if verdict is not None:
            file.close()
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
                    file.close()
                    req.error(416, headers=[(b"Content-Range", b"bytes */%d" % size)])
                    return
                if ranges:
                    self._serve_ranges(req, file, headers, ranges, size, content_type)
                    return
        headers.append((b"Content-Length", b"%d" % size))
        req.start_response(200, headers)
        req.sendfile(file, 0, size)
        req.end()

    @staticmethod
    def _serve_ranges(req, file, headers, ranges, size, content_type) -> None:
        if len(ranges) == 1:
            first, last = ranges[0]
            headers.append((b"Content-Range", content_range(first, last, size).encode()))
            headers.append((b"Content-Length", b"%d" % (last - first + 1)))
            req.start_response(206, headers)
            req.sendfile(file, first, last - first + 1)
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
            req.conn.write_file(req, file, offset, count, close=index == last_index)
        req.write(closing)
        req.end()
