"""Still images from files, decoded by OpenCV into RGB arrays.

A few hundred bytes of PNG can declare gigapixels, and OpenCV allocates what
the header declares before it reads a pixel. So :func:`decode_image` first
reads the size from the header (:func:`image_header`, pure, no decoding),
refuses an image over :class:`ImageLimits`, and only then decodes, checking
that OpenCV produced the size the header declared.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from streamer.errors import ConfigError, ImageError, InputNotFoundError

__all__ = ["DEFAULT_LIMITS", "ImageHeader", "ImageLimits", "decode_image", "image_header", "read_image"]


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header declares: ``format`` (``png``, ``jpeg``, ``bmp``, ``gif``, ``webp``,
    ``tiff``, ``pnm`` or ``pfm``) and the size in pixels, both at least 1."""

    format: str
    width: int
    height: int


@dataclass(frozen=True)
class ImageLimits:
    """The largest image :func:`decode_image` decodes: ``max_pixels`` is width x height,
    ``max_aspect_ratio`` the longer side over the shorter."""

    max_pixels: int = 40_000_000
    max_aspect_ratio: float = 20.0

    def __post_init__(self) -> None:
        if isinstance(self.max_pixels, bool) or not isinstance(self.max_pixels, int) or self.max_pixels < 1:
            raise ConfigError(f"limits.max_image_pixels = {self.max_pixels!r}; expected an integer >= 1")
        if isinstance(self.max_aspect_ratio, bool) or not self.max_aspect_ratio >= 1.0:  # also refuses NaN
            raise ConfigError(f"limits.max_aspect_ratio = {self.max_aspect_ratio!r}; expected a number >= 1")

    def check(self, header: ImageHeader, name: str) -> None:
        """Raise :class:`ImageError` naming ``name`` if ``header`` declares an image over these limits."""
        width, height = header.width, header.height
        if width * height > self.max_pixels:
            raise ImageError(
                f"{name} is {width}x{height} pixels ({_megapixels(width * height)}), over the limit of "
                f"{_megapixels(self.max_pixels)}; shrink it, or raise limits.max_image_pixels"
            )
        ratio = max(width, height) / min(width, height)
        if ratio > self.max_aspect_ratio:
            raise ImageError(
                f"{name} is {width}x{height} pixels, an aspect ratio of {_number(ratio)}:1, over the limit of "
                f"{_number(self.max_aspect_ratio)}:1; crop it, or raise limits.max_aspect_ratio"
            )


DEFAULT_LIMITS = ImageLimits()


def read_image(path: Path, *, limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Decode ``path`` into an ``[H, W, 3]`` ``uint8`` RGB array, as :func:`decode_image` does.

    Raises :class:`InputNotFoundError` if there is no such file and
    :class:`ImageError` if it is not an image OpenCV can decode or is over ``limits``.
    """
    if not path.exists():
        raise InputNotFoundError(f"image {path} does not exist")
    if not path.is_file():
        raise ImageError(f"{path} is not a file; give image files (PNG, JPEG, BMP, TIFF, WebP)")
    return decode_image(path.read_bytes(), str(path), limits=limits)


def decode_image(data: bytes, name: str, *, limits: ImageLimits = DEFAULT_LIMITS) -> np.ndarray:
    """Decode image bytes (PNG, JPEG, BMP, TIFF, WebP; GIF, PNM, PFM) into ``[H, W, 3]`` ``uint8`` RGB.

    ``name`` says in errors what the bytes were. Raises :class:`ImageError`, before
    decoding anything, if the header is not one :func:`image_header` reads or
    declares an image over ``limits``; and after, if OpenCV cannot decode it or
    decodes a size other than the header's. An EXIF rotation may swap width and height.
    """
    header = image_header(data)
    if header is None:
        raise _undecodable(data, name)
    limits.check(header, name)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except (cv2.error, MemoryError):
        image = None
    if image is None:
        raise _undecodable(data, name)
    if image.shape[:2] not in ((header.height, header.width), (header.width, header.height)):
        raise ImageError(
            f"{name} decoded to {image.shape[1]}x{image.shape[0]} pixels, but its {header.format} header says "
            f"{header.width}x{header.height}; the file is damaged or forged: re-encode it"
        )
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def image_header(data: bytes) -> ImageHeader | None:
    """The format and size that ``data``'s header declares, read from a few header bytes without decoding.

    ``None`` if the format is not one of PNG, JPEG, BMP, GIF, WebP, TIFF, PNM
    (P1-P6) or PFM, or the header is truncated, malformed or declares no pixels.
    Never raises. Each reader follows the header as OpenCV's decoder reads it, so
    that a header cannot show this function one size and OpenCV another.
    """
    for magic, name, read in _FORMATS:
        if data.startswith(magic):
            try:
                size = read(data)
            except (IndexError, ValueError, struct.error):  # truncated: a field or marker past the end
                return None
            if size is None or min(size) < 1:
                return None
            return ImageHeader(name, *size)
    return None


def _undecodable(data: bytes, name: str) -> ImageError:
    return ImageError(
        f"{name} is not an image OpenCV can decode ({len(data)} bytes); give a PNG, JPEG, BMP, TIFF or WebP file"
    )


def _megapixels(pixels: int) -> str:
    return f"{pixels / 1e6:.1f} MP" if pixels >= 100_000 else f"{pixels:,} pixels"


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").removesuffix(".")


def _png(data: bytes) -> tuple[int, int] | None:
    length, kind, width, height = struct.unpack_from(">I4sII", data, 8)  # IHDR must come first
    return (width, height) if (length, kind) == (13, b"IHDR") else None


_JPEG_FRAMES = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # SOFn; C4 DHT, C8 JPG, CC DAC are not
_JPEG_STANDALONE = frozenset((0x00, 0x01, *range(0xD0, 0xD9)))  # stuffed FF00, TEM, RST0-7, SOI: no length


def _jpeg(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while True:  # as libjpeg's next_marker: skip bytes up to an FF, fill FFs, then the marker
        pos = data.index(b"\xff", pos)
        while data[pos] == 0xFF:
            pos += 1
        marker, pos = data[pos], pos + 1
        if marker in _JPEG_FRAMES:
            height, width = struct.unpack_from(">HH", data, pos + 3)  # after length (2) and precision (1)
            return width, height
        if marker in (0xD9, 0xDA):  # image end, or a scan, before any frame header
            return None
        if marker not in _JPEG_STANDALONE:
            (length,) = struct.unpack_from(">H", data, pos)
            if length < 2:
                return None
            pos += length


def _bmp(data: bytes) -> tuple[int, int] | None:
    (size,) = struct.unpack_from("<i", data, 14)
    if size != 12 and size < 36:
        return None
    # BITMAPCOREHEADER (12 bytes): unsigned 16-bit sizes; BITMAPINFOHEADER and later: signed 32-bit,
    # a negative height meaning top-down rows.
    width, height = struct.unpack_from("<HH" if size == 12 else "<ii", data, 18)
    return width, abs(height)


def _gif(data: bytes) -> tuple[int, int] | None:
    width, height = struct.unpack_from("<HH", data, 6)  # the logical screen: OpenCV checks frames lie inside
    return width, height


def _webp(data: bytes) -> tuple[int, int] | None:
    if data[8:12] != b"WEBP":
        return None
    chunk = data[12:16]
    if chunk == b"VP8 ":  # lossy: a key frame's start code, then 14-bit sizes (2 scaling bits ignored)
        if data[23:26] != b"\x9d\x01\x2a":
            return None
        width, height = struct.unpack_from("<HH", data, 26)
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":  # lossless: a signature byte, then 14-bit sizes minus one
        if data[20] != 0x2F:
            return None
        (bits,) = struct.unpack_from("<I", data, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: the canvas, 24-bit sizes minus one
        width_low, width_high, height_low, height_high = struct.unpack_from("<HBHB", data, 24)
        return (width_low | width_high << 16) + 1, (height_low | height_high << 16) + 1
    return None


_TIFF_TAGS = {256: "width", 257: "height", 278: "rows_per_strip", 322: "tile_width", 323: "tile_height"}


def _tiff(data: bytes) -> tuple[int, int] | None:
    order = "<" if data.startswith(b"II") else ">"
    (ifd,) = struct.unpack_from(order + "I", data, 4)
    (count,) = struct.unpack_from(order + "H", data, ifd)
    tags: dict[str, int] = {}
    for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
        tag, kind, values = struct.unpack_from(order + "HHI", data, entry)
        if tag in _TIFF_TAGS:
            if _TIFF_TAGS[tag] in tags or values != 1 or kind not in (3, 4):  # one SHORT or LONG each
                return None
            (tags[_TIFF_TAGS[tag]],) = struct.unpack_from(order + ("H" if kind == 3 else "I"), data, entry + 8)
    width, height = tags.get("width", 0), tags.get("height", 0)
    # OpenCV allocates one tile (or strip) before decoding: it must not be far larger than the image.
    rows = tags.get("tile_height") or tags.get("rows_per_strip") or height
    tile = (tags.get("tile_width") or width) * (height if rows == 0xFFFF_FFFF else rows)
    return (width, height) if tile <= max(width * height, 1 << 20) else None


_SPACE = rb"[ \t\n\r\x0b\x0c]"
_GAP = rb"(?:" + _SPACE + rb"|#[^\r\n]*+[\r\n])*+"  # spaces and #-comments to the end of their line
# As OpenCV's ReadNumber: a gap, digits, and the byte after them consumed (possessive: no backtracking).
_PNM = re.compile(rb"P[1-6]" + _SPACE + _GAP + rb"(\d++)[\x00-\xff]" + _GAP + rb"(\d++)[\x00-\xff]")
_PFM = re.compile(rb"P[Ff]\n(\d++)" + _SPACE + rb"(\d++)" + _SPACE)  # one separator each, no comments


def _netpbm(data: bytes) -> tuple[int, int] | None:
    match = (_PFM if data[1:2] in (b"F", b"f") else _PNM).match(data)
    return (int(match[1]), int(match[2])) if match else None


_FORMATS: tuple[tuple[bytes, str, Callable[[bytes], tuple[int, int] | None]], ...] = (
    (b"\x89PNG\r\n\x1a\n", "png", _png),
    (b"\xff\xd8\xff", "jpeg", _jpeg),
    (b"BM", "bmp", _bmp),
    (b"GIF87a", "gif", _gif),
    (b"GIF89a", "gif", _gif),
    (b"RIFF", "webp", _webp),
    (b"II*\x00", "tiff", _tiff),
    (b"MM\x00*", "tiff", _tiff),
    *((b"P%d" % kind, "pnm", _netpbm) for kind in range(1, 7)),
    (b"PF", "pfm", _netpbm),
    (b"Pf", "pfm", _netpbm),
)
