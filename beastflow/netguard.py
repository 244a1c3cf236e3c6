"""The outbound URL guard: tenant-supplied URLs never reach our own network (see docs/security.md).

Every URL a tenant (or an operator's setting) makes BeastFlow call — a
connector's poll_url / snapshot_url / base_url and the next-page links of
its listings, a subscription's callback URL, an escalation webhook — goes
through one of the guarded clients built here. Two layers:

- `literal_problem(url)` at create/patch: a URL whose host is itself a
  forbidden address (127.0.0.1, ``[::1]``, 2130706433, 0x7f.1, 0177.0.0.1,
  localhost, ...) is refused there and then (422), without any DNS.
- `GuardedTransport` at request time: the connection's host name is resolved
  once, every address it resolves to is checked, and the socket connects to
  the address that was checked (TLS still verifies and sends SNI for the
  name). A name that resolves inside a forbidden range raises
  `ForbiddenAddressError`; there is no window between the check and the
  connect for a DNS answer to change (rebinding).

Forbidden unless allowed: loopback, RFC 1918 private, CGNAT 100.64.0.0/10,
link-local (with the cloud metadata address 169.254.169.254), multicast,
unspecified/"this network", reserved and broadcast, and their IPv6 forms
(::1, ::, fc00::/7, fe80::/10, fec0::/10, ff00::/8, and IPv4 addresses
mapped or embedded in IPv6). `BEASTFLOW_UPSTREAM_ALLOW` — comma-separated
CIDRs, each optionally with `:port` (IPv6 as `[cidr]:port`) — is what an
operator permits on purpose (the demo and the tests allow loopback for their
simulators). The module is pure: no Django, read the environment when asked.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

import httpcore
import httpx

ALLOW_ENV = "BEASTFLOW_UPSTREAM_ALLOW"
# What `make up`, the benches and the test suite set: their simulators listen on loopback.
LOOPBACK_ALLOW = "127.0.0.0/8,::1/128"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_FORBIDDEN: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(cidr), why)
    for cidr, why in (
        ("0.0.0.0/8", "unspecified"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "carrier-grade NAT"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),  # with 255.255.255.255, broadcast
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("fc00::/7", "unique local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local"),
        ("ff00::/8", "multicast"),
    )
)
# IPv6 prefixes that carry an IPv4 address in their last 32 bits: judged by that address.
_EMBEDS_V4 = (
    ipaddress.ip_network("::ffff:0:0/96"),  # IPv4-mapped
    ipaddress.ip_network("::/96"),  # IPv4-compatible (deprecated, still routed by some stacks)
    ipaddress.ip_network("64:ff9b::/96"),  # NAT64
)
_LOCAL_NAMES = ("localhost", "localhost.", "ip6-localhost", "ip6-loopback")


class ForbiddenAddressError(httpx.ConnectError):
    """A connection refused by the guard. An httpx.ConnectError, so a caller unaware of it still fails closed."""

    def __init__(self, host: str, address: str, why: str) -> None:
        super().__init__(f"{host} resolves to {address} ({why}): not an allowed upstream address")
        self.host = host
        self.address = address
        self.why = why


@dataclass(frozen=True)
class AllowRule:
    network: IPNetwork
    port: int | None  # None: every port

    def permits(self, address: IPAddress, port: int | None) -> bool:
        if address.version != self.network.version or address not in self.network:
            return False
        return self.port is None or port == self.port


def parse_allow(raw: str) -> tuple[AllowRule, ...]:
    """`BEASTFLOW_UPSTREAM_ALLOW`'s value -> rules. Raises ValueError naming the bad entry."""
    rules = []
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        cidr, port = entry, None
        if entry.startswith("["):  # [2001:db8::/32]:443
            cidr, _, rest = entry[1:].partition("]")
            if rest:
                port = _port(rest.removeprefix(":"), entry)
        elif entry.count(":") == 1:  # 10.0.0.0/8:8080
            cidr, _, raw_port = entry.partition(":")
            port = _port(raw_port, entry)
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError as exc:
            raise ValueError(f"{ALLOW_ENV}: {entry!r} is not a CIDR[:port]") from exc
        rules.append(AllowRule(network, port))
    return tuple(rules)


def _port(raw: str, entry: str) -> int:
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"{ALLOW_ENV}: {entry!r} has no valid port")
    return int(raw)


@lru_cache(maxsize=8)
def _allow_cached(raw: str) -> tuple[AllowRule, ...]:
    return parse_allow(raw)


def allow_rules() -> tuple[AllowRule, ...]:
    """The operator's allow list, read from the environment (parsed once per value)."""
    return _allow_cached(os.environ.get(ALLOW_ENV, ""))


def _judged(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address):
        for prefix in _EMBEDS_V4:
            if address in prefix and address not in (ipaddress.IPv6Address("::"), ipaddress.IPv6Address("::1")):
                return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address


def address_problem(
    address: IPAddress, port: int | None = None, *, allow: Iterable[AllowRule] | None = None
) -> str | None:
    """Why `address` may not be called (None: it may). The allow list wins over every range."""
    rules = allow_rules() if allow is None else tuple(allow)
    judged = _judged(address)
    if any(rule.permits(address, port) or rule.permits(judged, port) for rule in rules):
        return None
    for network, why in _FORBIDDEN:
        if judged.version == network.version and judged in network:
            return why
    return None


def literal_address(host: str) -> IPAddress | None:
    """The address a host names without DNS: dotted, bracketed IPv6, or the legacy forms
    inet_aton still accepts (2130706433, 0x7f.1, 0177.0.0.1, 127.1). None for a name."""
    host = host.strip().strip("[]")
    if host.lower() in _LOCAL_NAMES or host.lower().endswith(".localhost"):
        return ipaddress.IPv4Address("127.0.0.1")
    try:
        return ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    if host and all(char in "0123456789abcdefxABCDEFX." for char in host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def literal_problem(url: str) -> str | None:
    """Why a URL may not be configured, judged on its literal host only (None: fine or a name)."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return "not a URL"
    address = literal_address(parts.hostname or "")
    if address is None:
        return None
    why = address_problem(address, port)
    return f"{parts.hostname} is a {why} address, not an allowed upstream (see docs/security.md)" if why else None


def resolve_checked(host: str, port: int) -> str:
    """Resolve once, check every answer, return the address to connect to. Raises ForbiddenAddressError.

    Every address is checked, not just the first: a name answering with a
    public and a private address is refused, since another resolver (or the
    next connection) may pick the private one.
    """
    address = literal_address(host)
    if address is not None:
        candidates: list[IPAddress] = [address]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        candidates = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
    for candidate in candidates:
        why = address_problem(candidate, port)
        if why:
            raise ForbiddenAddressError(host, str(candidate), why)
    return str(candidates[0])


class _GuardedBackend(httpcore.SyncBackend):
    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[typing.Any] | None = None,
    ) -> httpcore.NetworkStream:
        # httpcore opens TLS over this stream with server_hostname=<the name>, so
        # certificates are still verified against the name, not the address.
        return super().connect_tcp(resolve_checked(host, port), port, timeout, local_address, socket_options)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport whose connections go only to checked addresses.

    No proxy: a proxy would do the resolving and defeat the check.
    """

    def __init__(self, **kwargs: typing.Any) -> None:
        super().__init__(**kwargs)
        pool = self._pool
        if not isinstance(pool, httpcore.ConnectionPool):  # pragma: no cover - a proxy was asked for
            raise TypeError("GuardedTransport cannot go through a proxy")
        pool._network_backend = _GuardedBackend()


def guarded_client(**kwargs: typing.Any) -> httpx.Client:
    """An httpx.Client for tenant-supplied URLs: guarded, redirects never followed, no proxy from env."""
    limits = kwargs.pop("limits", httpx.Limits(max_connections=100, max_keepalive_connections=20))
    return httpx.Client(
        transport=GuardedTransport(limits=limits),
        follow_redirects=False,
        trust_env=False,
        **kwargs,
    )


# -- headers a tenant may not set ------------------------------------------------------

# Hop-by-hop (RFC 9110 §7.6.1) and framing headers belong to the connection we
# open, and Host names the server we checked: none of them is the tenant's to set.
FORBIDDEN_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)
_HEADER_NAME_CHARS = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def header_problems(headers: dict[str, str]) -> list[str]:
    """What is wrong with tenant-configured request headers (empty: nothing)."""
    problems = []
    for name, value in headers.items():
        if not name or not set(name) <= _HEADER_NAME_CHARS:
            problems.append(f"{name!r} is not a header name")
        elif name.lower() in FORBIDDEN_HEADERS:
            problems.append(f"{name} is set by BeastFlow itself and cannot be configured")
        if any(char in value for char in "\r\n\x00"):
            problems.append(f"{name}: a header value cannot hold CR, LF or NUL")
    return problems
