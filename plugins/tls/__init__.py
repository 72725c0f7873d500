"""tls: HTTPS for the listeners marked ``tls`` (``Listen 443 tls``), as Monkey's tls plugin.

The certificate comes from ``plugins/tls/tls.conf``; a site may have its own, chosen by
SNI, and may send its plain HTTP requests to HTTPS (``RedirectHTTP On``). The contexts
are built in the master when a configuration is applied (a reload picks up renewed
certificates) and inherited by the workers; the TLS itself is the core's stream layer.
See docs/tls.md.
"""

from __future__ import annotations

from monkey_py.config import ConfigError
from monkey_py.hookspec import hookimpl

from .contexts import contexts
from .settings import SECTION, read_settings


class Tls:
    """Contexts per configuration (master); the redirects of this worker."""

    def __init__(self) -> None:
        self.contexts: dict[int, object] = {}
        # Site name -> the port HTTPS answers on, for sites that redirect plain HTTP.
        self.redirects: dict[str, int] = {}

    @hookimpl
    def monkey_site_sections(self):
        return [SECTION]

    @hookimpl
    def monkey_check_config(self, config):
        settings = read_settings(config)
        redirecting = [site for site in settings.sites.values() if site.redirect]
        if redirecting and not config.server.tls_listens():
            site = next(site for site in config.sites
                        if site.name in settings.sites and settings.sites[site.name].redirect)
            raise ConfigError("RedirectHTTP On needs a TLS listener to send clients to: add "
                              "e.g. 'Listen 443 tls' to [SERVER]",
                              site.sections[SECTION][0].get("RedirectHTTP").location)
        if settings.certificate is not None:
            contexts(settings)  # every file is read and checked, nothing kept

    @hookimpl
    def monkey_configure(self, config):
        settings = read_settings(config)
        if settings.certificate is not None:
            self.contexts[id(config)] = contexts(settings)

    @hookimpl
    def monkey_unconfigure(self, config):
        self.contexts.pop(id(config), None)

    @hookimpl
    def monkey_tls_context(self, config):
        return self.contexts.get(id(config))

    @hookimpl
    def monkey_worker_start(self, worker):
        config = worker.config
        listens = config.server.tls_listens()
        settings = read_settings(config)
        self.redirects = {site.name: (listens[0].port, site.server_names[0].encode())
                          for site in config.sites
                          if site.name in settings.sites and settings.sites[site.name].redirect}

    @hookimpl
    def monkey_request_received(self, request):
        redirect = self.redirects.get(request.site.name) if self.redirects else None
        if redirect is None or request.conn.secure:
            return None
        port, default_name = redirect
        # 308 keeps the method and body of a POST, PUT...; a GET or HEAD gets the usual 301.
        status = 301 if request.method in ("GET", "HEAD") else 308
        request.respond(status, [(b"Location", https_location(request, port, default_name))])
        return True


def https_location(request, port: int, default_name: bytes) -> bytes:
    """The ``https://`` address of ``request`` on ``port``: the host it asked for (its
    port dropped), else the site's first name."""
    host = request.host
    if host.endswith(b"]") or b":" not in host:
        name = host
    else:
        name = host.rpartition(b":")[0]
    port_part = b"" if port == 443 else b":%d" % port
    return b"https://%s%s%s" % (name or default_name, port_part, request.target)


plugin = Tls()
