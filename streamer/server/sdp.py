"""Checking a browser's SDP offer before aiortc sees it. Pure: no I/O.

aiortc's parser trusts its input: a malformed line surfaces as an
``AssertionError``, ``ValueError: invalid literal for int()`` or ``None is
not in list`` from deep inside it, and an offer without a DTLS fingerprint is
accepted and fails later on a task nobody awaits. :func:`check_offer` reads
the offer by the grammar of RFC 8866 and the WebRTC rules (JSEP, RFC 8829)
and says, in one sentence, what is wrong with it::

    check_offer(sdp, send_video=True)     # the server will send video (a viewer's offer)
    check_offer(sdp, receive_video=True)  # the server will receive video (a browser's camera)

It raises :class:`~streamer.server.wire.WireError` with code ``bad_offer``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from streamer.server.wire import WireError

__all__ = ["MAX_SDP_CHARS", "check_offer"]

#: An offer for one or two video tracks is a few KiB; this leaves room for many codecs.
MAX_SDP_CHARS = 64 * 1024

_LINE = re.compile(r"^[a-z]=")
_MEDIA = re.compile(r"^m=(\S+) (\d{1,5}) ([A-Z/]+) (\S.*)$")
_CONNECTION = re.compile(r"^IN IP[46] \S+$")
_INT = re.compile(r"^\d{1,10}$")
_FINGERPRINT = re.compile(r"^\S+ [0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2})+$")
_RTPMAP = re.compile(r"^(\d{1,3}) [^/\s]+/\d{1,10}(/\d{1,3})?$")
_SETUP_ROLES = ("actpass", "active", "passive")
_DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")
_INT_FMTP = ("apt", "max-fr", "max-fs", "maxplaybackrate", "minptime", "stereo", "useinbandfec")
#: payload types RTP keeps for RTCP (RFC 5761)
_RTCP_PAYLOADS = range(72, 77)


def _bad(text: str) -> WireError:
    return WireError("bad_offer", f"bad WebRTC offer: {text}")


def _candidate(value: str) -> str | None:
    bits = value.split()
    if len(bits) < 8 or bits[6] != "typ":
        return "has fewer than 8 fields or no 'typ'"
    if not (_INT.match(bits[1]) and _INT.match(bits[3]) and _INT.match(bits[5])) or int(bits[5]) > 65535:
        return "has a component, priority or port that is not a number"
    if bits[2].lower() not in ("udp", "tcp"):
        return f"has transport {bits[2]!r}; expected udp or tcp"
    if not bits[4].endswith(".local"):  # browsers may hide their address behind an mDNS name
        try:
            ipaddress.ip_address(bits[4])
        except ValueError:
            return f"has address {bits[4][:40]!r}, neither an IP address nor an mDNS .local name"
    for i in range(8, len(bits) - 1, 2):
        if bits[i] == "rport" and not _INT.match(bits[i + 1]):
            return "has an rport that is not a number"
    return None


def _pair(value: str, first: Callable[[str], bool]) -> str | None:
    bits = value.split(" ", 1)
    if len(bits) != 2 or not first(bits[0]) or not bits[1].strip():
        return "is not '<number> <value>'"
    return None


def _fmtp(value: str) -> str | None:
    problem = _pair(value, _INT.match)  # type: ignore[arg-type]
    if problem:
        return problem
    for parameter in value.split(" ", 1)[1].split(";"):
        key, sep, number = parameter.partition("=")
        if sep and key in _INT_FMTP and not _INT.match(number):
            return f"has {key}={number!r}, not a number"
    return None


def _extmap(value: str) -> str | None:
    bits = value.split()
    ident, _, direction = bits[0].partition("/") if bits else ("", "", "")
    if len(bits) != 2 or not _INT.match(ident) or (direction and direction not in _DIRECTIONS):
        return "is not '<id>[/<direction>] <uri>'"
    return None


def _ssrc(value: str) -> str | None:
    bits = value.split(" ", 1)
    if len(bits) != 2 or not _INT.match(bits[0]) or ":" not in bits[1]:
        return "is not '<ssrc> <attribute>:<value>'"
    return None


def _rtcp(value: str) -> str | None:
    port, space, address = value.partition(" ")
    if not _INT.match(port) or (space and not _CONNECTION.match(address)):
        return "is not '<port> [IN IP4|IP6 <address>]'"
    return None


#: attribute -> a check of its value returning what is wrong (None: fine); attributes not listed are free text
_ATTRIBUTES: dict[str, Callable[[str], str | None]] = {
    "candidate": _candidate,
    "fingerprint": lambda v: None if _FINGERPRINT.match(v) else "is not '<hash> <hex:hex:...>'",
    "setup": lambda v: None if v in _SETUP_ROLES else f"is not one of {', '.join(_SETUP_ROLES)}",
    "rtpmap": lambda v: None if _RTPMAP.match(v) else "is not '<payload> <codec>/<clock rate>[/<channels>]'",
    "fmtp": _fmtp,
    "rtcp-fb": lambda v: None if len(v.split()) >= 2 else "is not '<payload> <type> [<parameter>]'",
    "extmap": _extmap,
    "ssrc": _ssrc,
    "ssrc-group": lambda v: None if all(_INT.match(b) for b in v.split()[1:]) else "has an ssrc that is not a number",
    "rtcp": _rtcp,
    "sctp-port": lambda v: None if _INT.match(v) else "is not a number",
    "sctpmap": lambda v: _pair(v, _INT.match),  # type: ignore[arg-type]
    "max-message-size": lambda v: None if _INT.match(v) else "is not a number",
    "ice-ufrag": lambda v: None if v.strip() else "is empty",
    "ice-pwd": lambda v: None if v.strip() else "is empty",
    "mid": lambda v: None if v.strip() else "is empty",
}
#: attributes that carry a value after ':'
_VALUED = frozenset(_ATTRIBUTES) | {"group", "msid-semantic", "msid", "ice-options"}


def _check_line(number: int, line: str) -> None:
    """Raise if one ``x=...`` line breaks the grammar that aiortc relies on."""
    if line.startswith("c=") and not _CONNECTION.match(line[2:]):
        raise _bad(f"line {number} ({line[:40]!r}) is not 'c=IN IP4|IP6 <address>'")
    if not line.startswith("a="):
        return
    name, colon, value = line[2:].partition(":")
    if name in _VALUED and not colon:
        raise _bad(f"line {number}: a={name} needs a value after ':'")
    check = _ATTRIBUTES.get(name)
    problem = check(value) if check is not None and colon else None
    if problem:
        raise _bad(f"line {number} ({line[:60]!r}): a={name} {problem}")


def _sections(lines: list[tuple[int, str]]) -> list[list[tuple[int, str]]]:
    """The session part, then one list per ``m=`` section, each with its line numbers."""
    sections: list[list[tuple[int, str]]] = [[]]
    for number, line in lines:
        if line.startswith("m="):
            sections.append([])
        sections[-1].append((number, line))
    return sections


def _attribute(section: list[tuple[int, str]], name: str) -> str | None:
    for _, line in section:
        if line.startswith(f"a={name}:") or line == f"a={name}":
            return line[len(name) + 3 :]
    return None


def _direction(section: list[tuple[int, str]]) -> str | None:
    return next((line[2:] for _, line in section if line[2:] in _DIRECTIONS), None)


def _check_rtp_section(section: list[tuple[int, str]], kind: str, number: int) -> None:
    """What WebRTC requires of an audio or video section (JSEP writes all of it)."""
    if _direction(section) is None:
        raise _bad(f"the {kind} section at line {number} has no direction (a=sendrecv, sendonly, recvonly, inactive)")
    if not any(line == "a=rtcp-mux" for _, line in section):
        raise _bad(f"the {kind} section at line {number} has no a=rtcp-mux, which WebRTC requires")
    payloads = {line[9:].split(" ", 1)[0] for _, line in section if line.startswith("a=rtpmap:")}
    for n, line in section:
        if line.startswith("a=fmtp:") and line[7:].split(" ", 1)[0] not in payloads:
            raise _bad(f"line {n}: a=fmtp names a payload type with no a=rtpmap")


def check_offer(sdp: str, *, send_video: bool = False, receive_video: bool = False) -> None:
    """Raise a ``bad_offer`` :class:`WireError` saying what is wrong with the offer ``sdp``.

    ``send_video``: the server will send a video track, so the offer must
    accept one (``recvonly`` or ``sendrecv``); ``receive_video``: the offer
    must send one (``sendonly`` or ``sendrecv``).
    """
    if len(sdp) > MAX_SDP_CHARS:
        raise _bad(f"{len(sdp)} characters, over the {MAX_SDP_CHARS} an offer may have")
    lines = [(n, line.rstrip("\r")) for n, line in enumerate(sdp.split("\n"), 1) if line.strip()]
    if not lines or lines[0][1] != "v=0":
        raise _bad("it does not begin with the line 'v=0'; send the SDP of RTCPeerConnection.createOffer()")
    for number, line in lines:
        if not _LINE.match(line):
            raise _bad(f"line {number} ({line[:40]!r}) is not '<letter>=<value>'")
        _check_line(number, line)
    session, *media = _sections(lines)
    if not media:
        raise _bad("it has no media section (no 'm=' line); add a video transceiver before createOffer()")
    session_fingerprint = _attribute(session, "fingerprint") is not None
    session_ice = all(_attribute(session, key) is not None for key in ("ice-ufrag", "ice-pwd"))
    session_setup = _attribute(session, "setup") is not None
    mids: set[str] = set()
    video_directions: list[str] = []
    for section in media:
        number, head = section[0]
        found = _MEDIA.match(head)
        if not found or int(found.group(2)) > 65535:
            raise _bad(f"line {number} ({head[:40]!r}) is not 'm=<media> <port> <protocol> <formats>'")
        kind, profile, formats = found.group(1), found.group(3), found.group(4).split()
        if kind in ("audio", "video") and not profile.endswith("RTP/SAVPF"):
            raise _bad(f"line {number}: the {kind} profile is {profile!r}; WebRTC uses UDP/TLS/RTP/SAVPF")
        if kind in ("audio", "video") and not all(_INT.match(f) and int(f) < 256 for f in formats):
            raise _bad(f"line {number}: the {kind} formats must be RTP payload types 0..255")
        if kind in ("audio", "video") and any(int(f) in _RTCP_PAYLOADS for f in formats):
            raise _bad(f"line {number}: payload types 72..76 are reserved for RTCP")
        if not session_fingerprint and _attribute(section, "fingerprint") is None:
            raise _bad(f"the {kind} section at line {number} has no a=fingerprint (DTLS needs it)")
        if not session_ice and not all(_attribute(section, key) is not None for key in ("ice-ufrag", "ice-pwd")):
            raise _bad(f"the {kind} section at line {number} has no a=ice-ufrag and a=ice-pwd")
        if not session_setup and _attribute(section, "setup") is None:
            raise _bad(f"the {kind} section at line {number} has no a=setup (actpass, active or passive)")
        if kind in ("audio", "video"):
            _check_rtp_section(section, kind, number)
        mid = _attribute(section, "mid")
        if mid is None:
            raise _bad(f"the {kind} section at line {number} has no a=mid")
        if mid in mids:
            raise _bad(f"two media sections share a=mid:{mid}")
        mids.add(mid)
        if kind == "video":
            video_directions.append(_direction(section) or "")
    for number, line in session:
        if line.startswith("a=group:BUNDLE"):
            missing = [mid for mid in line.split()[1:] if mid not in mids]
            if missing:
                raise _bad(f"line {number}: a=group:BUNDLE names {missing[0]!r}, which no a=mid has")
    candidates = any(line.startswith("a=candidate:") for _, line in lines)
    if not candidates and any(line == "a=end-of-candidates" for _, line in lines):
        raise _bad("it has a=end-of-candidates but no a=candidate, so there is no address to connect to")
    if not video_directions:
        raise _bad("it has no video section; offer a video transceiver")
    if send_video and not any(d in ("recvonly", "sendrecv") for d in video_directions):
        raise _bad("no video section can receive (recvonly or sendrecv), so there is nowhere to send the stream")
    if receive_video and not any(d in ("sendonly", "sendrecv") for d in video_directions):
        raise _bad("no video section sends video (sendonly or sendrecv); offer the camera's track")
