"""The outbound URL guard's pure checks: addresses, encodings, allow list, headers."""

from __future__ import annotations

import ipaddress

import pytest

from beastflow.netguard import (
    address_problem,
    header_problems,
    literal_address,
    literal_problem,
    parse_allow,
)

NOTHING_ALLOWED: tuple = ()


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.0.9",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "100.64.0.1",
        "100.127.255.254",
        "169.254.169.254",
        "0.0.0.0",  # noqa: S104 (an address judged, not bound)
        "224.0.0.1",
        "239.255.255.250",
        "255.255.255.255",
        "::1",
        "::",
        "fc00::1",
        "fd12:3456::1",
        "fe80::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "64:ff9b::a9fe:a9fe",
    ],
)
def test_internal_addresses_are_forbidden(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address), 80, allow=NOTHING_ALLOWED) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "100.128.0.1", "172.32.0.1", "2606:4700::1111"])
def test_public_addresses_pass(address: str) -> None:
    assert address_problem(ipaddress.ip_address(address), 443, allow=NOTHING_ALLOWED) is None


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("localhost", "127.0.0.1"),
        ("api.localhost", "127.0.0.1"),
        ("3232235777", "192.168.1.1"),
    ],
)
def test_encoded_forms_are_read_as_the_address_they_name(host: str, expected: str) -> None:
    assert literal_address(host) == ipaddress.ip_address(expected)


def test_names_are_left_to_resolution() -> None:
    assert literal_address("example.com") is None
    assert literal_address("deadbeef.example") is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:5432/",
        "http://2130706433/",
        "http://0x7f.0.0.1:6379/",
        "http://0177.0.0.1/admin/",
        "http://[::1]:8000/admin/",
        "http://[::ffff:7f00:1]/",
        "http://169.254.169.254/latest/meta-data/",
        "https://localhost/",
        "http://10.0.0.5/",
    ],
)
def test_literal_forbidden_urls_are_refused_at_configuration(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BEASTFLOW_UPSTREAM_ALLOW", raising=False)
    assert literal_problem(url) is not None


def test_the_allow_list_permits_what_the_operator_means_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BEASTFLOW_UPSTREAM_ALLOW", "10.20.0.0/16:8443, 127.0.0.0/8")
    assert literal_problem("https://10.20.3.4:8443/feed") is None
    assert literal_problem("https://10.20.3.4:9000/feed") is not None  # only that port
    assert literal_problem("https://10.21.3.4:8443/feed") is not None
    assert literal_problem("http://127.0.0.1:9001/changes") is None
    assert literal_problem("http://169.254.169.254/") is not None


def test_allow_entries_parse_with_and_without_ports() -> None:
    rules = parse_allow("127.0.0.0/8, 10.0.0.0/8:8080, [fd00::/8]:443, ::1/128")
    assert [(str(rule.network), rule.port) for rule in rules] == [
        ("127.0.0.0/8", None),
        ("10.0.0.0/8", 8080),
        ("fd00::/8", 443),
        ("::1/128", None),
    ]
    with pytest.raises(ValueError, match="not a CIDR"):
        parse_allow("intranet")
    with pytest.raises(ValueError, match="port"):
        parse_allow("10.0.0.0/8:http")


def test_tenants_cannot_set_host_or_hop_by_hop_headers() -> None:
    assert header_problems({"Authorization": "Bearer x", "X-Api-Version": "2024"}) == []
    for name in ("Host", "host", "Connection", "Transfer-Encoding", "Upgrade", "TE", "Proxy-Authorization"):
        assert header_problems({name: "x"}), name
    assert header_problems({"X-A": "a\r\nHost: evil"})
    assert header_problems({"X-A": "a\x00b"})
    assert header_problems({"Bad Name": "x"})
