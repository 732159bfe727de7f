"""Where a webhook may go: no loopback, private, link-local or cloud-metadata address unless
the endpoint is marked internal, checked on the address each call actually resolves to."""

import ipaddress
import socket
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

#: Cloud instance-metadata services (AWS, GCP and Azure's address, AWS IPv6, Alibaba).
_METADATA = frozenset(
    ipaddress.ip_address(a) for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)


class RefusedAddress(OSError):
    """The endpoint resolves to an address webhooks may not reach."""


def forbidden(address: str) -> bool:
    """Whether ``address`` is loopback, private, link-local, metadata or otherwise not public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip in _METADATA
        or ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
        or not ip.is_global
    )


def literal_refused(url: str) -> bool:
    """Whether ``url`` names a forbidden IP address directly (no resolver sees it)."""
    host = urlsplit(url).hostname or ""
    try:
        return forbidden(host)
    except ValueError:  # a name, not an address: the resolver checks it
        return False


class GuardedResolver(AbstractResolver):
    """Resolves as aiohttp does, then refuses a name with any forbidden address, so that a
    DNS answer cannot point a public endpoint at an internal service."""

    def __init__(self) -> None:
        self._inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """The addresses of ``host``; RefusedAddress if any is forbidden."""
        results = await self._inner.resolve(host, port, family)
        if any(forbidden(r["host"]) for r in results):
            raise RefusedAddress(f"{host} resolves to an internal address")
        return results

    async def close(self) -> None:
        """Close the underlying resolver."""
        await self._inner.close()
