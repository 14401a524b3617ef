"""Every error streamer raises on purpose.

Each class is also a builtin exception, so callers that only know Python's
own tree still catch the right thing::

    StreamerError
     ├── ConfigError          (ValueError)        bad key or value: config.toml, STREAMER_*, CLI, options
     │    └── StreamExistsError                    a stream id that is already running
     ├── RunningModeError     (ValueError)        a method called in the wrong running mode, bad timestamps
     ├── ImageError           (ValueError)        an undecodable image, one over the limits, an array of the wrong shape
     ├── InputNotFoundError   (FileNotFoundError) a named file that does not exist
     ├── SourceError          (OSError)           a camera or stream that cannot be opened or read
     ├── ModelError           (ValueError)        a model that contradicts its declaration
     │    └── WeightsIntegrityError               a weights file whose sha256 is not the expected one
     ├── DeviceUnavailableError (RuntimeError)    an execution device asked for that cannot load
     └── ClusterError         (ConnectionError)   a Ray cluster that cannot be reached, a camera group that cannot start

Messages name the input (file, key, value) and say what would fix it.
"""

from __future__ import annotations

__all__ = [
    "ClusterError",
    "ConfigError",
    "DeviceUnavailableError",
    "ImageError",
    "InputNotFoundError",
    "ModelError",
    "RunningModeError",
    "SourceError",
    "StreamExistsError",
    "StreamerError",
    "WeightsIntegrityError",
]


class StreamerError(Exception):
    """Base of every error streamer raises on purpose."""


class ConfigError(StreamerError, ValueError):
    """A configuration key or option value is unknown or invalid."""


class StreamExistsError(ConfigError):
    """A stream was added under an id that is already running."""


class RunningModeError(StreamerError, ValueError):
    """A method was called that the classifier's running mode does not allow."""


class ImageError(StreamerError, ValueError):
    """An image could not be decoded or is over the limits, or its array has the wrong shape or dtype."""


class InputNotFoundError(StreamerError, FileNotFoundError):
    """A file named by the user does not exist."""


class SourceError(StreamerError, OSError):
    """A camera, stream or video file cannot be opened or read."""


class ModelError(StreamerError, ValueError):
    """A model file contradicts its declaration (shape, layout, labels, format)."""


class WeightsIntegrityError(ModelError):
    """A pretrained weights file does not have the expected sha256."""


class DeviceUnavailableError(StreamerError, RuntimeError):
    """The execution device that was asked for cannot be used on this machine."""


class ClusterError(StreamerError, ConnectionError):
    """A Ray cluster that cannot be reached (the message names its address, credentials redacted), or a
    camera group that cannot start on it."""
