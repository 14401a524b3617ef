"""Real test media made at test time: video clips panned across real photographs.

``make_clip`` writes a clip whose frames are moving crops of a photograph
(scikit-image's public-domain images by default), encoded with PyAV in any
container and codec FFmpeg offers, optionally with a sine-wave audio track.
Frame ``i`` has ``pts = i`` in a ``1/fps`` time base, so ``pts_ms`` of frame
``i`` is ``i * 1000 / fps``.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import av
import cv2
import numpy as np
from skimage import data

__all__ = ["clip_frame", "make_clip", "photo"]


def photo(name: str = "collage") -> np.ndarray:
    """An RGB photograph: a scikit-image name, or ``collage`` (samples/collage.jpg)."""
    if name == "collage":
        path = Path(__file__).resolve().parents[1] / "samples" / "collage.jpg"
        return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    image = getattr(data, name)()
    return image[0] if name == "stereo_motorcycle" else image


def clip_frame(source: np.ndarray, index: int, frames: int, size: tuple[int, int]) -> np.ndarray:
    """Frame ``index`` of ``frames``: a window of 80% of ``source`` panning left to right, resized to ``size``."""
    height, width = source.shape[:2]
    win_w, win_h = int(width * 0.8), int(height * 0.8)
    x = round((width - win_w) * index / max(1, frames - 1))
    y = (height - win_h) // 2
    return cv2.resize(source[y : y + win_h, x : x + win_w], size, interpolation=cv2.INTER_AREA)


def make_clip(
    path: Path,
    *,
    frames: int = 30,
    fps: int = 15,
    size: tuple[int, int] = (320, 240),
    codec: str = "libx264",
    source: str = "collage",
    audio: bool = False,
    audio_codec: str = "aac",
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    rotation: int = 0,
) -> Path:
    """Write a clip of ``frames`` frames at ``fps`` to ``path`` (container from the suffix).

    ``options`` go to the video encoder, ``container_options`` to the muxer
    (e.g. ``{"movflags": "+faststart"}``: an MP4 whose index comes first).
    ``rotation`` (degrees counter-clockwise) is stored as the display rotation, as phones do.
    ``audio`` adds a 440 Hz tone in ``audio_codec`` (48 kHz mono) as long as the video.
    """
    picture = photo(source)
    with av.open(str(path), "w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        if options:
            stream.options = options
        elif codec == "libx264":
            stream.options = {"preset": "ultrafast", "tune": "zerolatency", "g": str(fps)}
        sound = container.add_stream(audio_codec, rate=48000) if audio else None
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(clip_frame(picture, i, frames, size), format="rgb24")
            frame.pts = i  # in the encoder's 1/fps time base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
        if sound is not None:
            samples = int(48000 * frames / fps)
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(samples) / 48000)).astype(np.float32)[None]
            chunk = 960 if audio_codec == "libopus" else 1024
            sample_format = sound.codec_context.format.name  # fltp for aac, s16 for pcm_s16le, flt for opus
            if sample_format.startswith("s16"):
                tone = (tone * 32767).astype(np.int16)
            for start in range(0, samples, chunk):
                block = av.AudioFrame.from_ndarray(tone[:, start : start + chunk], format=sample_format, layout="mono")
                block.sample_rate = 48000
                block.pts = start
                container.mux(sound.encode(block))
            container.mux(sound.encode(None))
    return path


def black_png(width: int, height: int) -> bytes:
    """A valid black ``width`` x ``height`` PNG (1-bit grey) compressed row by row, so its pixels never exist
    here: 32000x32000 is 125 KB on disk and would be 3 GB decoded to RGB. For testing image bombs."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    packer, row = zlib.compressobj(9), bytes(1 + (width + 7) // 8)  # filter byte 0, then the packed bits
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, grey, deflate, no filter, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
