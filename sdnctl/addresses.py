"""Addresses as the YAML files write them, read the same way by the policy and the
topology readers (a neutral module, so that neither package imports the other for it)."""

from __future__ import annotations

from ipaddress import AddressValueError, IPv4Address
from typing import Any


def parse_address(value: Any) -> IPv4Address | None:
    """An IPv4 address written as text (ipaddress would also take a bare int)."""
    if not isinstance(value, str):
        return None
    try:
        return IPv4Address(value.strip())
    except AddressValueError:
        return None
