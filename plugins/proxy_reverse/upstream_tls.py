"""The TLS client contexts of the ``https://`` servers, built when the configuration is
loaded (in the master, before the workers are forked), one per entry: nginx's
``proxy_ssl_verify on`` and ``proxy_ssl_trusted_certificate`` as ``UpstreamVerify`` and
``UpstreamCAFile``.

Every context takes TLS 1.2 and 1.3 only, offers ALPN ``http/1.1`` and presents no
client certificate. With verification on (the default) the server's certificate must
chain to the system's CA store, or to the CAs of ``UpstreamCAFile`` instead, and carry
the name the ServerList gives (or its IP address).
"""

from __future__ import annotations

import ssl
from pathlib import Path


def client_context(verify: bool, ca_file: Path | None) -> ssl.SSLContext:
    """A context for connections to upstream servers over TLS."""
    context = ssl.create_default_context(
        cafile=str(ca_file) if ca_file is not None and verify else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class ClientContexts:
    """The contexts of one configuration: entries with the same settings share one (the
    system's CA store is parsed once, not once per entry)."""

    def __init__(self) -> None:
        self._made: dict[tuple, ssl.SSLContext] = {}

    def get(self, verify: bool, ca_file: Path | None) -> ssl.SSLContext:
        key = (verify, ca_file if verify else None)
        context = self._made.get(key)
        if context is None:
            context = self._made[key] = client_context(verify, ca_file)
        return context
