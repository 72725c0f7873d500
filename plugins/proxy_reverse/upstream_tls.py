"""The TLS client contexts of the ``https://`` servers, built when the configuration is
loaded (in the master, before the workers are forked), one per entry: nginx's
``proxy_ssl_verify on``, ``proxy_ssl_trusted_certificate`` and
``proxy_ssl_certificate``/``proxy_ssl_certificate_key`` as ``UpstreamVerify``,
``UpstreamCAFile`` and ``UpstreamCertificate``.

Every context takes TLS 1.2 and 1.3 only and offers ALPN ``http/1.1``. With
verification on (the default) the server's certificate must chain to the system's CA
store, or to the CAs of ``UpstreamCAFile`` instead, and carry the name the ServerList
gives (or its IP address). With ``UpstreamCertificate`` the proxy presents that client
certificate to servers that ask for one (mutual TLS); without it, none.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ClientCertificate:
    """The certificate the proxy presents to upstream servers: a PEM file with the
    certificate first (then its intermediates), and the PEM file of its private key
    (None: the key is in the certificate's file)."""

    certificate: Path
    key: Path | None = None

    def load_into(self, context: ssl.SSLContext) -> None:
        """Load it into ``context``; raises OSError or ssl.SSLError. A key protected by a
        passphrase is refused rather than asked for (no one is at a terminal)."""
        context.load_cert_chain(self.certificate, self.key, password=_no_passphrase)


def _no_passphrase() -> bytes:
    return b""


def client_context(verify: bool, ca_file: Path | None,
                   certificate: ClientCertificate | None = None) -> ssl.SSLContext:
    """A context for connections to upstream servers over TLS."""
    context = ssl.create_default_context(
        cafile=str(ca_file) if ca_file is not None and verify else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if certificate is not None:
        certificate.load_into(context)
    return context


class ClientContexts:
    """The contexts of one configuration: entries with the same settings share one (the
    system's CA store is parsed once, not once per entry)."""

    def __init__(self) -> None:
        self._made: dict[tuple, ssl.SSLContext] = {}

    def get(self, verify: bool, ca_file: Path | None,
            certificate: ClientCertificate | None = None) -> ssl.SSLContext:
        key = (verify, ca_file if verify else None, certificate)
        context = self._made.get(key)
        if context is None:
            context = self._made[key] = client_context(verify, ca_file, certificate)
        return context
