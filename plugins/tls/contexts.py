"""TLS contexts from the configured files: one for the server, one per site with its own
certificate, the right one chosen by SNI.

Every context takes TLS 1.2 and 1.3 only, with the ``ssl`` module's modern cipher
defaults; ALPN offers ``http/1.1``; renegotiation, compression and session tickets are
off (tickets would need keys shared by the workers; they are left out). A certificate
that does not parse, a key that does not match it, or a file that cannot be read is a
ConfigError at the line that named it.
"""

from __future__ import annotations

import os
import ssl
import tempfile

from monkey_py.config import ConfigError

from .settings import Certificate, TlsSettings


def server_context(certificate: Certificate) -> ssl.SSLContext:
    """A server context serving ``certificate``."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.options |= ssl.OP_NO_TICKET | ssl.OP_NO_RENEGOTIATION | ssl.OP_NO_COMPRESSION
    context.set_alpn_protocols(["http/1.1"])
    _load(context, certificate)
    return context


def contexts(settings: TlsSettings) -> ssl.SSLContext:
    """The server's context; sites with a certificate of their own get theirs by SNI,
    any other name (or none) the server's."""
    default = server_context(settings.certificate)
    by_name: dict[str, ssl.SSLContext] = {}
    for site in settings.sites.values():
        if site.certificate is not None:
            own = server_context(site.certificate)
            for name in site.names:
                by_name[name.lower()] = own
    if by_name:
        def choose(connection: ssl.SSLObject, server_name: str | None, _context) -> None:
            chosen = by_name.get(server_name.lower()) if server_name else None
            if chosen is not None:
                connection.context = chosen
        default.sni_callback = choose
    return default


def _check_pem_certificates(path, location) -> None:
    """The file holds PEM certificates (a certificate, or a chain)."""
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=str(path))
    except ssl.SSLError as exc:
        raise ConfigError(f"{path} is not a PEM certificate ({exc.reason or exc})",
                          location) from None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", location) from None


def _load(context: ssl.SSLContext, certificate: Certificate) -> None:
    lines = certificate.lines
    _check_pem_certificates(certificate.certificate, lines["CertificateFile"])
    if certificate.chain is not None:
        _check_pem_certificates(certificate.chain, lines["CertificateChainFile"])
    with tempfile.TemporaryDirectory() as scratch:
        certfile = str(certificate.certificate)
        if certificate.chain is not None:
            # ssl loads a chain from the certificate's own file: write them together.
            certfile = os.path.join(scratch, "chain.pem")
            with open(certfile, "wb") as out:
                for part in (certificate.certificate, certificate.chain):
                    out.write(part.read_bytes().rstrip(b"\n") + b"\n")
        try:
            context.load_cert_chain(certfile, keyfile=str(certificate.key))
        except OSError as exc:
            if isinstance(exc, ssl.SSLError):
                if "KEY_VALUES_MISMATCH" in str(exc):
                    reason = f"is not the key of {certificate.certificate}"
                else:
                    reason = f"is not a PEM private key ({exc.reason or exc})"
                raise ConfigError(f"{certificate.key} {reason}", lines["RSAKeyFile"]) from None
            raise ConfigError(f"cannot read {certificate.key}: {exc.strerror}",
                              lines["RSAKeyFile"]) from None
    if certificate.dh_parameters is not None:
        try:
            context.load_dh_params(str(certificate.dh_parameters))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{certificate.dh_parameters}: not usable Diffie-Hellman "
                              f"parameters ({exc})", lines["DHParameterFile"]) from None
