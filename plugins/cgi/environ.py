"""The script a request names, and the CGI/1.1 meta-variables it gets (RFC 3875 §4.1).

Shared by the cgi and fastcgi plugins: a FastCGI request carries the same variables as
its parameters. Everything is bytes: header values are not always UTF-8.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass

from monkey_py.config import ConfigError
from monkey_py.static.paths import Forbidden, resolve, url_to_relpath

NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Variables the server sets from the request: a site may not set them (SetEnv).
RESERVED = frozenset({
    "AUTH_TYPE", "CONTENT_LENGTH", "CONTENT_TYPE", "GATEWAY_INTERFACE", "PATH_INFO",
    "PATH_TRANSLATED", "QUERY_STRING", "REMOTE_ADDR", "REMOTE_HOST", "REMOTE_PORT",
    "REMOTE_USER", "REQUEST_METHOD", "REQUEST_URI", "SCRIPT_FILENAME", "SCRIPT_NAME",
    "SERVER_ADDR", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "SERVER_SOFTWARE",
    "DOCUMENT_ROOT", "DOCUMENT_URI", "REDIRECT_STATUS", "HTTPS",
})
# Request headers that never become HTTP_* variables: Proxy would set HTTP_PROXY, which
# many HTTP libraries read as their proxy ("httpoxy"); the body's own headers have their
# meta-variables.
NOT_PASSED = frozenset({b"proxy", b"content-length", b"content-type"})


class ScriptNotFound(Exception):
    """No regular file along the request path (answer 404)."""


@dataclass(frozen=True)
class Script:
    """The file a request runs, its URL path, and the path left after it (PATH_INFO)."""

    filename: str
    name: str        # "/cgi-bin/env.cgi"
    path_info: str   # "/more/path" or ""
    root: str


def locate_script(root: str, raw_path: bytes, follow_symlinks: bool) -> Script:
    """The first regular file along the decoded, normalised request path.

    ``/cgi-bin/env.cgi/a/b`` runs ``cgi-bin/env.cgi`` with PATH_INFO ``/a/b``. Raises
    Forbidden for a path the static handler would refuse (traversal, symbolic links with
    ``SymLink Off``) and ScriptNotFound when the path names no file.
    """
    relpath = url_to_relpath(raw_path)
    parts = relpath.rstrip("/").split("/") if relpath else []
    for count in range(1, len(parts) + 1):
        candidate = "/".join(parts[:count])
        filename = resolve(root, candidate, follow_symlinks)
        try:
            mode = os.stat(filename).st_mode
        except OSError:
            raise ScriptNotFound(candidate) from None
        if stat.S_ISREG(mode):
            rest = relpath[len(candidate):]
            return Script(filename, "/" + candidate, rest, root)
        if not stat.S_ISDIR(mode):
            raise Forbidden("not a regular file")
    raise ScriptNotFound(relpath)


def check_variable_name(name: str) -> str | None:
    """Why ``name`` cannot be set with SetEnv, or None."""
    if not NAME_RE.fullmatch(name):
        return "a variable name is letters, digits and '_', not starting with a digit"
    if name.upper() in RESERVED or name.upper().startswith("HTTP_"):
        return "the server sets this variable from the request"
    return None


def set_env(value: str, location) -> tuple[bytes, bytes]:
    """``SetEnv NAME value``: a variable given to every script of a site."""
    name, _, text = value.partition(" ")
    problem = check_variable_name(name)
    if problem:
        raise ConfigError(f"SetEnv {name}: {problem}", location)
    return name.encode(), text.strip().encode()


def site_section(site, name: str):
    """The site's single ``[name]`` section, or None; a second one is an error."""
    sections = site.sections.get(name, [])
    if len(sections) > 1:
        raise ConfigError(f"[{name}] appears twice in site {site.name}; merge them into one",
                          sections[1].location)
    return sections[0] if sections else None


def rules_of(site, plugin: str) -> list:
    """The site's ``[HANDLERS] Match`` rules that name ``plugin``, in order.

    A handler is asked both by its rules and, with no parameters, for every request; it
    finds the rule that chose it here (the first matching one), with its parameters.
    """
    return [rule for rule in site.handlers if rule.plugin == plugin]


def _address(pair) -> tuple[bytes, bytes]:
    host, port = pair[0], pair[1]
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return host.encode(), b"%d" % port


def meta_variables(request, script: Script, software: bytes, extra=(),
                   pass_authorization: bool = False) -> list[tuple[bytes, bytes]]:
    """The variables of RFC 3875 §4.1, ``REQUEST_URI`` and ``DOCUMENT_ROOT`` (which PHP
    and most scripts read), ``HTTP_*`` for the request headers, then ``extra``.

    ``pass_authorization``: give the ``Authorization`` header to the script (FastCGI
    applications such as PHP do their own Basic authentication with it; RFC 3875 lets a
    server keep it from CGI scripts, as Apache does).
    """
    remote_addr, remote_port = _address(request.peer)
    try:
        server_addr, server_port = _address(request.conn.sock.getsockname())
    except OSError:
        server_addr, server_port = b"", b""
    host = request.host or request.site.server_names[0].encode()
    server_name = host[: host.rindex(b":")] if host.rfind(b":") > host.rfind(b"]") else host
    variables = [
        (b"GATEWAY_INTERFACE", b"CGI/1.1"),
        (b"SERVER_SOFTWARE", software),
        (b"SERVER_PROTOCOL", b"HTTP/" + request.version.encode()),
        (b"SERVER_NAME", server_name),
        (b"SERVER_ADDR", server_addr),
        (b"SERVER_PORT", server_port),
        (b"REMOTE_ADDR", remote_addr),
        (b"REMOTE_PORT", remote_port),
        (b"REQUEST_METHOD", request.method.encode()),
        (b"REQUEST_URI", request.target),
        (b"QUERY_STRING", request.query or b""),
        (b"SCRIPT_NAME", script.name.encode()),
        (b"SCRIPT_FILENAME", script.filename.encode()),
        (b"DOCUMENT_ROOT", script.root.encode()),
        (b"PATH_INFO", script.path_info.encode()),
        (b"REDIRECT_STATUS", b"200"),
    ]
    if script.path_info:
        variables.append((b"PATH_TRANSLATED", (script.root + script.path_info).encode()))
    if request.content_length > 0:
        variables.append((b"CONTENT_LENGTH", b"%d" % request.content_length))
    content_type = request.header(b"content-type")
    if content_type is not None:
        variables.append((b"CONTENT_TYPE", content_type))
    user = request.notes.get("auth")
    if user:
        variables += [(b"AUTH_TYPE", user["type"].encode()),
                      (b"REMOTE_USER", user["user"].encode())]
    variables += http_variables(request.headers, pass_authorization)
    variables += extra
    return variables


def http_variables(headers, pass_authorization: bool) -> list[tuple[bytes, bytes]]:
    """``HTTP_*`` variables; repeated headers joined (cookies with ``; ``).

    A header whose name holds ``_`` is left out: ``X_Forwarded_For`` would otherwise
    pass for ``X-Forwarded-For`` once both are ``HTTP_X_FORWARDED_FOR``.
    """
    joined: dict[bytes, list[bytes]] = {}
    for name, value in headers:
        if name in NOT_PASSED or b"_" in name or (
                name == b"authorization" and not pass_authorization):
            continue
        joined.setdefault(name, []).append(value)
    return [(b"HTTP_" + name.upper().replace(b"-", b"_"),
             (b"; " if name == b"cookie" else b", ").join(values))
            for name, values in joined.items()]
