"""Certificates for TLS tests (made with trustme) and HTTPS clients that trust them."""

from __future__ import annotations

import http.client
import shutil
import socket
import ssl
from pathlib import Path

import trustme

from rawhttp import Client


class Certificates:
    """A private CA and the PEM files of the certificates it issued, under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.ca = trustme.CA()

    def issue(self, name: str, *hosts: str, intermediate: bool = False) -> tuple[Path, Path]:
        """Write ``name.crt`` and ``name.key`` for ``hosts``; with ``intermediate`` the
        leaf is signed by an intermediate CA whose certificate goes to ``name.chain``."""
        issuer = self.ca.create_child_ca() if intermediate else self.ca
        cert = issuer.issue_cert(*hosts)
        pems = cert.cert_chain_pems
        pems[0].write_to_path(str(self.root / f"{name}.crt"))
        cert.private_key_pem.write_to_path(str(self.root / f"{name}.key"))
        if intermediate:
            with open(self.root / f"{name}.chain", "wb") as chain:
                for pem in pems[1:]:
                    chain.write(pem.bytes())
        return self.root / f"{name}.crt", self.root / f"{name}.key"

    def server_context(self, name: str) -> ssl.SSLContext:
        """A server context serving the certificate ``issue(name, ...)`` wrote."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.root / f"{name}.crt", self.root / f"{name}.key")
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA only."""
        context = ssl.create_default_context()
        self.ca.configure_trust(context)
        return context

    def ca_file(self) -> Path:
        path = self.root / "ca.pem"
        self.ca.cert_pem.write_to_path(str(path))
        return path


def tls_connect(port: int, context: ssl.SSLContext, server_hostname: str | None = "localhost",
                timeout: float = 10.0) -> ssl.SSLSocket:
    """A TLS connection to 127.0.0.1:``port``, handshake done."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return context.wrap_socket(sock, server_hostname=server_hostname)
    except BaseException:
        sock.close()
        raise


class TlsClient(Client):
    """A rawhttp Client over TLS to 127.0.0.1:``port``, handshake done."""

    def __init__(self, port: int, context: ssl.SSLContext, server_hostname: str = "localhost",
                 timeout: float = 5.0) -> None:
        self.sock = tls_connect(port, context, server_hostname, timeout)
        self.timeout = timeout
        self.buffer = bytearray()


def https_get(port: int, context: ssl.SSLContext, path: str = "/", host: str = "localhost",
              headers: dict | None = None) -> tuple[int, dict, bytes]:
    """GET ``path`` over a fresh HTTPS connection: (status, headers, body)."""
    conn = http.client.HTTPSConnection(host, port, context=context, timeout=10)
    conn.sock = tls_connect(port, context, host)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def peer_names(sock: ssl.SSLSocket) -> set[str]:
    """The DNS names of the certificate the server presented."""
    cert = sock.getpeercert()
    return {value for kind, value in cert.get("subjectAltName", ()) if kind == "DNS"}


SHIPPED = Path(__file__).resolve().parents[1] / "etc" / "monkey"


def shipped_config(dest: Path) -> Path:
    """A copy of etc/monkey at ``dest`` with the certificate ``make run`` would generate
    for its HTTPS listener (made here with a throwaway CA)."""
    shutil.copytree(SHIPPED, dest)
    generated = dest / "plugins" / "tls" / "self-signed"
    generated.mkdir(exist_ok=True)
    cert = trustme.CA().issue_cert("localhost", "127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(generated / "server.crt"))
    cert.private_key_pem.write_to_path(str(generated / "server.key"))
    return dest
