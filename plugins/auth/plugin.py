"""The auth plugin's hooks: Basic authentication at stage 20.

Monkey checks credentials at stage 30; monkey_py does it at stage 20, before the site's
``[HANDLERS]`` rules, so that a location is protected whoever serves it (static files,
FastCGI, CGI, the reverse proxy). A request for a protected location without valid
credentials gets 401 with ``WWW-Authenticate: Basic realm="<Title>"``.

The password check runs off the loop (see :mod:`.verifier`); when it passes, the request
is dispatched again and goes on where it stopped: stage 20 hooks see it a second time,
and this plugin lets it through by the note it left (``request.notes["auth"]``, which
also tells CGI and FastCGI scripts ``REMOTE_USER``).
"""

from __future__ import annotations

import base64
import binascii
import logging

from monkey_py.hookspec import hookimpl
from monkey_py.static.paths import Forbidden, url_to_relpath

from .settings import SECTION, Area, read_areas
from .verifier import Verifier

log = logging.getLogger("monkey_py.auth")

NAME = "auth"
MAX_CREDENTIALS = 1024


def basic_credentials(value: bytes | None) -> tuple[str, bytes] | None:
    """``(user, password)`` from an ``Authorization: Basic ...`` value, or None."""
    if value is None or len(value) > MAX_CREDENTIALS:
        return None
    scheme, _, token = value.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True)
        user, sep, password = decoded.partition(b":")
        name = user.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    if not sep or not name:
        return None
    return name, password


def resume(request) -> None:
    """Dispatch ``request`` again, from stage 20, after an asynchronous check passed.

    The hooks have no way for a stage 20 plugin to hold a request and then let it go on;
    the server's own dispatch does exactly that (see the note in docs/plugins/auth.md).
    """
    request.conn.server.dispatch(request)


class Auth:
    """Per-configuration areas (master), and the areas and verifier of this worker."""

    def __init__(self) -> None:
        self.states: dict[int, dict[str, list[Area]]] = {}
        self.areas: dict[str, list[Area]] = {}
        self.verifier: Verifier | None = None

    @hookimpl
    def monkey_site_sections(self):
        return [SECTION]

    @hookimpl
    def monkey_check_config(self, config):
        read_areas(config)

    @hookimpl
    def monkey_configure(self, config):
        # Read in the master: the users files may be readable by root only.
        self.states[id(config)] = read_areas(config)

    @hookimpl
    def monkey_unconfigure(self, config):
        self.states.pop(id(config), None)

    @hookimpl
    def monkey_worker_start(self, worker):
        self.areas = self.states.get(id(worker.config), {})
        if self.areas:
            self.verifier = Verifier(worker.loop)

    @hookimpl
    def monkey_worker_stop(self, worker):
        if self.verifier is not None:
            self.verifier.close()
            self.verifier = None

    @hookimpl
    def monkey_request_received(self, request):
        areas = self.areas.get(request.site.name)
        if not areas:
            return None
        if NAME in request.notes:
            return None  # checked already: this is the dispatch after the check
        try:
            path = "/" + url_to_relpath(request.path)
        except Forbidden as exc:
            # A path that cannot be normalised cannot be matched against the locations.
            request.error(403, str(exc))
            return True
        for area in areas:
            if area.covers(path):
                return self.authenticate(request, area)
        return None

    def authenticate(self, request, area: Area) -> bool:
        authorization = request.header(b"authorization")
        credentials = basic_credentials(authorization)
        if credentials is None:
            return self.refuse(request, area)
        name, password = credentials
        verifier = self.verifier
        key = verifier.memo_key(area.users, authorization)
        if verifier.remembered_user(key) == name:
            request.notes[NAME] = {"user": name, "type": "Basic"}
            return None

        def checked(ok: bool) -> None:
            request.on_abort = None
            if not ok:
                log.info("auth: refused user %r from %s for %s (realm %r)", name,
                         request.peer[0], request.path.decode("latin-1"), area.realm)
                self.refuse(request, area)
                return
            request.notes[NAME] = {"user": name, "type": "Basic"}
            resume(request)

        check = verifier.check(area.users, name, password, key, checked)
        if check is None:
            request.error(503, "Too many logins are being checked; try again shortly.",
                          headers=[(b"Retry-After", b"1")])
            return True
        request.on_abort = check.cancel
        return True

    @staticmethod
    def refuse(request, area: Area) -> bool:
        request.error(401, headers=[(b"WWW-Authenticate", area.challenge)])
        return True


plugin = Auth()
