"""Who may talk to the server: the ``Host``, ``Origin`` and token checks. Pure: no I/O.

Every request's ``Host`` must name the address the server listens on (or
one of ``allowed_hosts``), so a page whose DNS name rebinds to 127.0.0.1
gets nothing. Off loopback a token is required; it is accepted as
``?token=...`` or ``Authorization: Bearer ...``, exactly once, and compared
in constant time. A browser's WebSocket must come from the page's own
origin or one of ``allowed_origins``. :mod:`streamer.server.guard` applies
these to every request; nothing here ever logs or echoes a token.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "host_allowed",
    "is_loopback",
    "normal_origin",
    "origin_allowed",
    "token_verdict",
]

#: Query strings with more fields than this are refused (``parse_qs`` stops there): a token hidden among thousands.
MAX_QUERY_FIELDS = 64


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 in brackets or not) is a loopback one."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def normal_origin(origin: str) -> str:
    """An origin as compared: no surrounding spaces or trailing ``/``, lowercased."""
    return origin.strip().rstrip("/").lower()


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def host_allowed(host_header: str, bind_host: str, allowed_hosts: Sequence[str] = ()) -> bool:
    """Whether a request's ``Host`` header names this server (bound to ``bind_host``).

    Accepted: a loopback name or address when bound to loopback, the bound
    address itself, any IP address when bound to every interface (``0.0.0.0``,
    ``::``), and the names in ``allowed_hosts`` (``"*"``: any). A name that is
    none of these is what a DNS-rebinding page sends, so it is refused.
    """
    try:
        name = (urlsplit(f"//{host_header.strip()}").hostname or "").lower()
    except ValueError:
        return False
    if not name:
        return False
    if "*" in allowed_hosts or name in allowed_hosts:
        return True
    address, bound = _ip(name), _ip(bind_host)
    if name == bind_host.lower().strip("[]"):
        return True
    if address is None:
        return name == "localhost" and is_loopback(bind_host)
    if bound is not None and bound.is_unspecified:
        return True
    return address.is_loopback and is_loopback(bind_host)


def _host_port(netloc: str, scheme: str) -> str:
    """``netloc`` as ``host:port``, the scheme's default port filled in, lowercased; ``""`` if malformed."""
    default = 443 if scheme in ("https", "wss") else 80
    try:
        parts = urlsplit(f"//{netloc}")
        port = parts.port or default
    except ValueError:
        return ""
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def origin_allowed(origins: Sequence[str], hosts: Sequence[str], allowed_origins: Sequence[str] = ()) -> bool:
    """Whether a WebSocket opening handshake with these ``Origin`` and ``Host`` headers may go on.

    No ``Origin`` at all: not a browser, allowed. Otherwise exactly one, and it
    is one of ``allowed_origins`` (already :func:`normal_origin`) or names the
    very host and port the request was sent to (the page's own origin).
    """
    if not origins:
        return True
    if len(origins) > 1:
        return False
    origin = normal_origin(origins[0])
    if origin in allowed_origins:
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if len(hosts) != 1 or parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    own = _host_port(hosts[0], parts.scheme)
    return bool(own) and _host_port(parts.netloc, parts.scheme) == own


def token_verdict(token: str | None, query: str, authorizations: Sequence[str]) -> bool | None:
    """Whether a request carrying ``query`` (the raw query string) and these ``Authorization`` headers
    holds ``token`` (``None``: no token is required).

    ``None`` when it offers more than one token (in the query, the header or
    both), more than one ``Authorization`` header, or a query of more than
    :data:`MAX_QUERY_FIELDS` fields: a bad request, whatever the values.
    """
    if len(authorizations) > 1:
        return None
    try:
        offered = parse_qs(query, keep_blank_values=True, max_num_fields=MAX_QUERY_FIELDS).get("token", [])
    except ValueError:  # more than max_num_fields fields
        return None
    if authorizations and authorizations[0][:7].lower() == "bearer ":
        offered.append(authorizations[0][7:].strip())
    if len(offered) > 1:
        return None
    if token is None:
        return True
    return len(offered) == 1 and hmac.compare_digest(offered[0].encode(), token.encode())
