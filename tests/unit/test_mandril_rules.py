"""Mandril's rules without a server: networks, URL texts, hotlinks."""

from __future__ import annotations

import pytest

from monkey_py.config import ConfigError, parse_text
from monkey_py_plugins.mandril.rules import Rules, same_site, spellings


def rules(*lines: str) -> Rules:
    text = "[RULES]\n" + "".join(f"    {line}\n" for line in lines)
    return Rules.read(parse_text(text, "mandril.conf").sections[0])


def test_addresses_and_networks():
    found = rules("IP 10.20.1.1/24", "IP 192.168.3.150", "IP 2001:db8::/32")
    assert str(found.refusing_address("10.20.1.77")).startswith("IP 10.20.1.1/24 (mandril.conf:2)")
    assert found.refusing_address("10.20.2.1") is None
    assert found.refusing_address("192.168.3.150") is not None
    assert found.refusing_address("192.168.3.151") is None
    assert found.refusing_address("2001:db8:1::5") is not None
    assert found.refusing_address("::ffff:10.20.1.9") is not None  # IPv4 on an IPv6 socket
    assert found.refusing_address("::1") is None


def test_a_bad_address_is_reported_at_its_line():
    with pytest.raises(ConfigError, match=r"mandril.conf:3: IP 10.0.0.300 is not an address"):
        rules("URL /x", "IP 10.0.0.300")


def test_unknown_keys_are_reported():
    with pytest.raises(ConfigError, match="unknown key 'Deny'.*valid keys: IP, URL, deny_hotlink"):
        rules("Deny 1.2.3.4")


@pytest.mark.parametrize("path, refused", [
    (b"/private/a.txt", True), (b"/PRIVATE/a.txt", True), (b"/%70rivate/a", True),
    (b"/a/../private/x", True), (b"/docs/PictureS/x.png", True), (b"/public/x", False),
    (b"/a%2fprivate", True),
])
def test_url_rules_search_the_decoded_path(path, refused):
    found = rules("URL /private", "URL pictures")
    assert (found.refusing_request(spellings(path), b"example.com", None) is not None) == refused


@pytest.mark.parametrize("referer, host, same", [
    (b"http://example.com/page", b"example.com", True),
    (b"http://www.example.com/page", b"img.example.com:8080", True),
    (b"https://user:pw@example.com:443/x", b"example.com", True),
    (b"http://evil.com/page", b"example.com", False),
    (b"http://example.com.evil.net/", b"example.com", False),
    (b"http://127.0.0.1/", b"127.0.0.1:2001", True),
    (b"http://127.0.0.2/", b"127.0.0.1", False),
    (b"not a url", b"example.com", True),
])
def test_same_site(referer, host, same):
    assert same_site(referer, host) == same


def test_hotlink_rules_need_a_foreign_referer():
    found = rules("deny_hotlink /imgs")
    paths = spellings(b"/imgs/logo.png")
    assert found.refusing_request(paths, b"example.com", None) is None
    assert found.refusing_request(paths, b"example.com", b"http://www.example.com/") is None
    assert found.refusing_request(paths, b"example.com", b"http://other.org/") is not None
    assert found.refusing_request(spellings(b"/css/a.css"), b"example.com",
                                  b"http://other.org/") is None
