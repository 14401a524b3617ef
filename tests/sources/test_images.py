"""Image files decoded into RGB arrays."""

from __future__ import annotations

import io
import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from streamer.errors import ConfigError, ImageError, InputNotFoundError
from streamer.sources import images
from streamer.sources.images import ImageHeader, ImageLimits, decode_image, image_header, read_image
from tests.media import black_png


def test_png_comes_back_as_rgb(tmp_path: Path) -> None:
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[..., 0] = 200  # red
    path = tmp_path / "red.png"
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    image = read_image(path)
    assert image.shape == (4, 6, 3) and image.dtype == np.uint8
    assert image[0, 0].tolist() == [200, 0, 0]


def test_bundled_samples_decode() -> None:
    samples = Path(__file__).resolve().parents[2] / "samples"
    assert read_image(samples / "chelsea.jpg").shape == (300, 451, 3)


def test_missing_text_empty_and_folder(tmp_path: Path) -> None:
    with pytest.raises(InputNotFoundError, match=r"image .*gone\.png does not exist"):
        read_image(tmp_path / "gone.png")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ImageError, match=r"notes\.txt is not an image OpenCV can decode \(5 bytes\)"):
        read_image(text)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.jpg is not an image OpenCV can decode \(0 bytes\)"):
        read_image(empty)
    with pytest.raises(ImageError, match="is not a file"):
        read_image(tmp_path)


# --- headers, read without decoding ------------------------------------------------------------------------------

WIDE = ImageLimits(max_aspect_ratio=2000.0)  # lets the 3000x2 test images through
SIZES = [(37, 19), (1, 1), (3000, 2), (2, 3000)]  # (width, height)


def _encoded(ext: str, width: int, height: int, params: tuple[int, ...] = (), *, grey: bool = False) -> bytes:
    """A real file as OpenCV writes it: noise, one channel if ``grey``, float for PFM."""
    image = np.random.default_rng(width * height).integers(0, 256, (height, width, 3), np.uint8)
    source = image[..., 0].copy() if grey else image
    ok, buffer = cv2.imencode(ext, source.astype(np.float32) / 255 if ext == ".pfm" else source, params)
    assert ok
    return buffer.tobytes()


FILES = [  # (extension, format, imencode parameters, one channel)
    (".png", "png", (), False),
    (".png", "png", (), True),
    (".jpg", "jpeg", (), False),
    (".jpg", "jpeg", (cv2.IMWRITE_JPEG_PROGRESSIVE, 1), True),
    (".bmp", "bmp", (), False),
    (".bmp", "bmp", (), True),  # with a palette
    (".gif", "gif", (), False),
    (".webp", "webp", (), False),  # lossless: VP8L
    (".webp", "webp", (cv2.IMWRITE_WEBP_QUALITY, 60), False),  # lossy: VP8
    (".tif", "tiff", (), False),
    (".ppm", "pnm", (), False),  # P6
    (".ppm", "pnm", (cv2.IMWRITE_PXM_BINARY, 0), False),  # P3: text, after OpenCV's comment line
    (".pgm", "pnm", (), True),  # P5
    (".pbm", "pnm", (), True),  # P4: bits
    (".pfm", "pfm", (), False),  # PF
    (".pfm", "pfm", (), True),  # Pf
]


@pytest.mark.parametrize(("width", "height"), SIZES)
@pytest.mark.parametrize(("ext", "name", "params", "grey"), FILES)
def test_header_of_every_format_and_the_decode_agrees(
    ext: str, name: str, params: tuple[int, ...], grey: bool, width: int, height: int
) -> None:
    data = _encoded(ext, width, height, params, grey=grey)
    assert image_header(data) == ImageHeader(name, width, height)
    assert decode_image(data, "x", limits=WIDE).shape == (height, width, 3)


@pytest.mark.parametrize(("ext", "name", "params", "grey"), FILES)
def test_a_truncated_header_is_none(ext: str, name: str, params: tuple[int, ...], grey: bool) -> None:
    """Every prefix of a file reads as nothing or as the whole file's header, never as another size."""
    data = _encoded(ext, 37, 19, params, grey=grey)
    assert {image_header(data[:n]) for n in range(len(data) + 1)} == {None, ImageHeader(name, 37, 19)}
    assert image_header(data[:8]) is None


def test_big_endian_tiff_and_hand_made_headers() -> None:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, np.zeros((19, 37, 3), np.uint8), byteorder=">", photometric="rgb")
    assert buffer.getvalue().startswith(b"MM\x00*")
    assert image_header(buffer.getvalue()) == ImageHeader("tiff", 37, 19)
    assert decode_image(buffer.getvalue(), "big-endian.tif").shape == (19, 37, 3)
    # BITMAPCOREHEADER (OS/2): 12 bytes, 16-bit sizes; 24-bit rows padded to 4 bytes
    core = b"BM" + struct.pack("<IHHI", 26 + 3 * 16, 0, 0, 26) + struct.pack("<IHHHH", 12, 5, 3, 1, 24) + bytes(48)
    assert image_header(core) == ImageHeader("bmp", 5, 3)
    assert decode_image(core, "os2.bmp").shape == (3, 5, 3)
    # a negative height is a top-down BMP
    bmp = bytearray(_encoded(".bmp", 37, 19))
    struct.pack_into("<i", bmp, 22, -19)
    assert image_header(bytes(bmp)) == ImageHeader("bmp", 37, 19)
    assert decode_image(bytes(bmp), "top-down.bmp").shape == (19, 37, 3)
    # JPEG: fill bytes, TEM, RST0, a comment and a stuffed FF00 before the frame header
    jpeg = _encoded(".jpg", 37, 19)
    jpeg = jpeg[:2] + b"\xff\xff\xff\x01\xff\xd0\xff\xfe\x00\x05abc\xff\x00" + jpeg[2:]
    assert image_header(jpeg) == ImageHeader("jpeg", 37, 19)
    assert decode_image(jpeg, "x.jpg").shape == (19, 37, 3)
    # PNM: comments anywhere between the numbers, as OpenCV reads them
    pgm = b"P5\n# made by hand\n 4 # width\n\t3\n# maxval next\n255\n" + bytes(12)
    assert image_header(pgm) == ImageHeader("pnm", 4, 3)
    assert decode_image(pgm, "x.pgm").shape == (3, 4, 3)
    # EXIF orientation 6: OpenCV turns the image, so the header's sizes come back swapped, and that is fine
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((20, 50, 3), np.uint8)).save(buffer, "JPEG", exif=exif)
    assert image_header(buffer.getvalue()) == ImageHeader("jpeg", 50, 20)
    assert decode_image(buffer.getvalue(), "turned.jpg").shape == (50, 20, 3)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello",
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDX" + bytes(8),  # not IHDR first
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR" + bytes(8),  # 0x0
        b"\xff\xd8\xff\xd9",  # ends before a frame header
        b"\xff\xd8\xff\xda\x00\x08",  # a scan before a frame header
        b"\xff\xd8\xff\xe0\x00\x01",  # a segment length under 2
        b"BM" + bytes(12) + struct.pack("<I", 20) + bytes(8),  # an unknown DIB header size
        b"RIFF\x00\x00\x00\x00WAVEfmt ",  # RIFF, but not WebP
        b"RIFF\x00\x00\x00\x00WEBPVP8 " + bytes(20),  # no key-frame start code
        b"II*\x00\x08\x00\x00\x00\x01\x00" + struct.pack("<HHII", 256, 1, 1, 9),  # a BYTE width, no height
        b"P6 37",  # no height
        b"P6\n-3 4 255\n",
        b"P7\nWIDTH 1\nHEIGHT 1\nDEPTH 3\nMAXVAL 255\nENDHDR\n\x00\x00\x00",  # PAM is not read
        b"PF 4 3 -1\n",  # PFM wants a line break after PF
        b"#?RADIANCE\n",  # formats OpenCV reads but image_header does not: refused
        b"\x00\x00\x00\x20ftypavif",
    ],
)
def test_unknown_or_malformed_headers_are_none(data: bytes) -> None:
    assert image_header(data) is None
    with pytest.raises(ImageError, match=rf"x is not an image OpenCV can decode \({len(data)} bytes\)"):
        decode_image(data, "x")


def _tiff_header(*tags: tuple[int, int]) -> bytes:
    """A little-endian TIFF with only a first directory: each tag one LONG."""
    entries = b"".join(struct.pack("<HHII", tag, 4, 1, value) for tag, value in tags)
    return b"II*\x00" + struct.pack("<IH", 8, len(tags)) + entries + bytes(4)


def test_tiff_tiles_and_strips_far_larger_than_the_image_are_refused() -> None:
    """OpenCV allocates one whole tile or strip before decoding: 16x16 pixels in one 8192x8192 tile cost 256 MB."""
    small = io.BytesIO()
    tifffile.imwrite(small, np.zeros((16, 16, 3), np.uint8), tile=(256, 256), photometric="rgb", compression="zlib")
    assert image_header(small.getvalue()) == ImageHeader("tiff", 16, 16), "a common tile size is fine"
    assert decode_image(small.getvalue(), "small.tif").shape == (16, 16, 3)
    assert image_header(_tiff_header((256, 16), (257, 16), (322, 1024), (323, 1024))) == ImageHeader("tiff", 16, 16)
    assert image_header(_tiff_header((256, 16), (257, 16), (322, 8192), (323, 8192))) is None
    assert image_header(_tiff_header((256, 10_000), (257, 4), (278, 0xFFFF_FFFF))) == ImageHeader("tiff", 10_000, 4)
    assert image_header(_tiff_header((256, 10_000), (257, 4), (278, 8192))) is None, "8192 rows of 10000 a strip"
    assert image_header(_tiff_header((256, 16), (257, 16), (257, 99_999))) is None, "two heights"
    assert image_header(_tiff_header((256, 16))) is None, "no height"


MAGICS = [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP", b"II*\x00", b"MM\x00*"]
MAGICS += [b"P1 ", b"P4\n", b"P6\t", b"PF\n", b"Pf\n"]


@settings(max_examples=1000, deadline=None)
@given(st.one_of(st.binary(max_size=300), st.tuples(st.sampled_from(MAGICS), st.binary(max_size=300)).map(b"".join)))
def test_fuzz_image_header_never_raises(data: bytes) -> None:
    header = image_header(data)
    assert header is None or (header.width >= 1 and header.height >= 1)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(FILES), st.data())
def test_fuzz_damaged_files_give_an_array_or_an_image_error(
    file: tuple[str, str, tuple[int, ...], bool], draw: st.DataObject
) -> None:
    data = bytearray(_encoded(file[0], 37, 19, file[2], grey=file[3]))
    for _ in range(draw.draw(st.integers(1, 4))):
        data[draw.draw(st.integers(0, min(len(data), 200) - 1))] = draw.draw(st.integers(0, 255))
    data = data[: draw.draw(st.integers(0, len(data)))]
    try:
        image = decode_image(bytes(data), "damaged", limits=ImageLimits(max_pixels=100_000))
    except ImageError:
        return
    assert image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8


# --- limits: refused from the header, before anything is allocated ----------------------------------------------


def _peak_bytes(call: Callable[[], object]) -> int:
    """The most memory Python and numpy (OpenCV's arrays included) held at once during ``call``."""
    tracemalloc.start()
    try:
        call()
    except ImageError:
        pass
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak


def test_the_bomb_builder_makes_real_pngs() -> None:
    assert decode_image(black_png(64, 48), "small.png").shape == (48, 64, 3)
    assert _peak_bytes(lambda: decode_image(black_png(2000, 2000), "4mp.png")) > 12_000_000, "decodes are traced"


def test_a_pixel_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    bomb = black_png(32000, 32000)
    assert len(bomb) < 200_000
    message = r"bomb\.png is 32000x32000 pixels \(1024\.0 MP\), over the limit of 40\.0 MP; shrink it, or raise limits"
    with pytest.raises(ImageError, match=message):
        decode_image(bomb, "bomb.png")
    assert _peak_bytes(lambda: decode_image(bomb, "bomb.png")) < 1_000_000
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb)
    with pytest.raises(ImageError, match=r"bomb\.png is 32000x32000 pixels"):
        read_image(path)


@pytest.mark.parametrize(("width", "height"), [(1, 100_000), (100_000, 1)])
def test_an_aspect_bomb_is_refused(width: int, height: int) -> None:
    """Tiny decoded, but scaled to 256 pixels on its short side it would be 256x25600000."""
    bomb = _encoded(".png", width, height)
    message = (
        rf"thin\.png is {width}x{height} pixels, an aspect ratio of 100000:1, over the limit of 20:1; "
        r"crop it, or raise limits\.max_aspect_ratio"
    )
    with pytest.raises(ImageError, match=message):
        decode_image(bomb, "thin.png")


def test_limits_are_inclusive_and_configurable(tmp_path: Path) -> None:
    data = _encoded(".png", 37, 19)
    assert decode_image(data, "x", limits=ImageLimits(max_pixels=37 * 19)).shape == (19, 37, 3)
    with pytest.raises(ImageError, match=r"x is 37x19 pixels \(703 pixels\), over the limit of 702 pixels"):
        decode_image(data, "x", limits=ImageLimits(max_pixels=37 * 19 - 1))
    assert decode_image(_encoded(".png", 40, 2), "x").shape == (2, 40, 3), "20:1 exactly"
    with pytest.raises(ImageError, match=r"an aspect ratio of 20\.5:1, over the limit of 20:1"):
        decode_image(_encoded(".png", 41, 2), "x")
    with pytest.raises(ImageError, match=r"over the limit of 1\.5:1"):
        decode_image(data, "x", limits=ImageLimits(max_aspect_ratio=1.5))
    path = tmp_path / "x.png"
    path.write_bytes(data)
    with pytest.raises(ImageError, match=r"x\.png is 37x19 pixels"):
        read_image(path, limits=ImageLimits(max_pixels=100))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_pixels": 0}, r"limits\.max_image_pixels = 0; expected an integer >= 1"),
        ({"max_pixels": 1.5}, r"limits\.max_image_pixels = 1\.5; expected an integer >= 1"),
        ({"max_aspect_ratio": 0.5}, r"limits\.max_aspect_ratio = 0\.5; expected a number >= 1"),
        ({"max_aspect_ratio": float("nan")}, r"limits\.max_aspect_ratio = nan; expected a number >= 1"),
    ],
)
def test_bad_limits(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ImageLimits(**options)


def test_a_decode_that_disagrees_with_the_header_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A header that could show one size and OpenCV decode another must not slip past the limits."""
    monkeypatch.setattr(images, "image_header", lambda data: ImageHeader("png", 10, 10))
    with pytest.raises(ImageError, match=r"x\.png decoded to 37x19 pixels, but its png header says 10x10; the file"):
        decode_image(_encoded(".png", 37, 19), "x.png")


def test_grey_and_alpha_come_back_as_rgb() -> None:
    grey = cv2.imencode(".png", np.full((4, 6), 90, np.uint8))[1].tobytes()
    assert decode_image(grey, "grey.png")[0, 0].tolist() == [90, 90, 90]
    bgra = np.zeros((4, 6, 4), np.uint8)
    bgra[..., 2], bgra[..., 3] = 200, 128  # red, half transparent
    image = decode_image(cv2.imencode(".png", bgra)[1].tobytes(), "alpha.png")
    assert image.shape == (4, 6, 3) and image[0, 0].tolist() == [200, 0, 0]
