"""Addresses the web fetcher never connects to: link-local ranges and the cloud metadata services, however
an address is spelt.

The metadata services answer on link-local IPv4 (169.254.169.254: AWS, GCP, Azure, OCI, NCP) and link-local
IPv6 (fe80::/10), and also on AWS's IPv6 address ``fd00:ec2::254`` (a unique-local address, not link-local)
and Alibaba Cloud's ``100.100.100.200``. An IPv6 address can also carry an IPv4 one: IPv4-mapped
(``::ffff:169.254.169.254``), IPv4-compatible (``::169.254.169.254``), IPv4-translated (``::ffff:0:a.b.c.d``),
NAT64 (``64:ff9b::a.b.c.d``) and 6to4 (``2002:a9fe:a9fe::``); a socket given one of those may reach the IPv4
address inside, so the address inside is judged too. Other spellings of IPv4 (``2852039166``, ``0xa9fea9fe``,
``0251.0376.0251.0376``) are not addresses to ``ipaddress``: they are names, and what the system resolver makes
of them is checked like any name's answer (``web._SafeResolver``).
"""

from __future__ import annotations

import ipaddress
from ipaddress import IPv4Address, IPv6Address

__all__ = ["METADATA_ADDRESSES", "is_refused_address"]

METADATA_ADDRESSES = frozenset({ipaddress.ip_address("fd00:ec2::254"), ipaddress.ip_address("100.100.100.200")})
"""Cloud metadata services outside the link-local ranges: AWS's IPv6 IMDS and Alibaba Cloud's."""

_LOW32 = 0xFFFF_FFFF
_EMBEDDING = (
    ipaddress.ip_network("::/96"),  # IPv4-compatible (deprecated, but a socket may still take it)
    ipaddress.ip_network("::ffff:0:0/96"),  # IPv4-mapped
    ipaddress.ip_network("::ffff:0:0:0/96"),  # IPv4-translated (SIIT)
    ipaddress.ip_network("64:ff9b::/96"),  # NAT64 well-known prefix
    ipaddress.ip_network("64:ff9b:1::/48"),  # NAT64 local-use prefix
)


def _embedded(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address ``address`` carries, if it is one of the forms that embed one."""
    if address.sixtofour is not None:
        return address.sixtofour
    if any(address in network for network in _EMBEDDING) and int(address) > 1:  # not :: or ::1
        return IPv4Address(int(address) & _LOW32)
    return None


def _refused(address: IPv4Address | IPv6Address) -> bool:
    return address.is_link_local or address in METADATA_ADDRESSES


def is_refused_address(host: str) -> bool:
    """Whether ``host`` is a literal IP address (``[...]`` and a ``%zone`` allowed) that is link-local, a cloud
    metadata address, or an IPv6 form of either. A name is never refused here (its answers are checked when
    it is resolved)."""
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    if _refused(address):
        return True
    inner = _embedded(address) if isinstance(address, IPv6Address) else None
    return inner is not None and _refused(inner)
