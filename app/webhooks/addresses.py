"""Where a webhook may be sent: http(s) URLs whose host resolves only to public addresses (the SSRF guard).

Checked at create and again at every send, on the addresses the name resolves to then, and
the send connects to the address it checked (app/webhooks/sender.py): a name that resolved
to a public address at create and to 127.0.0.1 later (DNS rebinding) is refused at the send.
WEBHOOK_ALLOW_PRIVATE=1 lifts the address rule (a receiver on the same host or network).
"""
import ipaddress
import socket
from dataclasses import dataclass

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Named apart from "private": the cloud metadata services answer on these.
METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
            ipaddress.ip_address("100.100.100.200")}


class RefusedUrl(ValueError):
    """A URL a webhook may not be sent to; the message says why."""


@dataclass(frozen=True)
class Target:
    url: httpx.URL
    host: str
    port: int
    addresses: tuple[IPAddress, ...]


def parse(url: str) -> httpx.URL:
    """The URL, when it is an absolute http or https one with a host."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise RefusedUrl(f"not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise RefusedUrl(f"must be an http:// or https:// URL, got scheme {parsed.scheme or 'none'!r}")
    if not parsed.host:
        raise RefusedUrl("must name a host, e.g. https://hooks.example.com/trainyard")
    return parsed


def why_refused(address: IPAddress) -> str | None:
    """Why ``address`` is not a public one, or None when it is."""
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:  # ::ffff:127.0.0.1 is 127.0.0.1
        address = mapped
    if address in METADATA:
        return "a cloud metadata address"
    for kind in ("unspecified", "loopback", "link_local", "multicast", "reserved", "private"):
        if getattr(address, f"is_{kind}"):
            return f"a {kind.replace('_', '-')} address"
    return None if address.is_global else "not a public address"


def resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    """Every address ``host`` resolves to now (a literal address: itself)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise RefusedUrl(f"the host {host!r} does not resolve: {exc}") from None
    addresses = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])  # drops an IPv6 zone (fe80::1%eth0)
        if address not in addresses:
            addresses.append(address)
    return tuple(addresses)


def check(url: str, *, allow_private: bool) -> Target:
    """The URL's target with the addresses to connect to; RefusedUrl naming the first bad one."""
    parsed = parse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = resolve(parsed.host, port)
    if not allow_private:
        for address in addresses:
            reason = why_refused(address)
            if reason:
                shown = "" if parsed.host == str(address) else f"{parsed.host!r} resolves to "
                raise RefusedUrl(f"{shown}{address}, {reason}: webhooks go to public addresses only "
                                 "(the server's WEBHOOK_ALLOW_PRIVATE=1 allows others)")
    return Target(parsed, parsed.host, port, addresses)
