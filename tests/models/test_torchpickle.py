"""The restricted legacy torch reader: real file, hostile and truncated files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from streamer.errors import ModelError
from streamer.models import zoo
from streamer.models.torchpickle import load_legacy_state_dict

_MAGIC = 0x1950A86A20F9469CFC6C


def _weights() -> Path:
    source = zoo.embedded("efficientnet-lite0").files[0]
    return zoo.package_file(source.package, source.path)


def test_reads_tensors_with_their_dtypes() -> None:
    state = load_legacy_state_dict(_weights())
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_conv_stem.weight"].dtype == np.float32
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    assert state["_bn0.num_batches_tracked"].shape == ()
    assert np.isfinite(state["_fc.weight"]).all()


def test_truncated_file_is_a_clear_error(tmp_path: Path) -> None:
    truncated = tmp_path / "cut.pth"
    truncated.write_bytes(_weights().read_bytes()[:-1000])
    with pytest.raises(ModelError, match=r"cut\.pth: truncated"):
        load_legacy_state_dict(truncated)


def test_refuses_to_run_code_from_a_hostile_pickle(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("pwned",))

    hostile = tmp_path / "evil.pth"
    with open(hostile, "wb") as handle:
        for item in (_MAGIC, 1001, {"little_endian": True}, {"x": Evil()}):
            pickle.dump(item, handle, protocol=2)
    with pytest.raises(ModelError, match=r"refusing to unpickle (__builtin__|builtins)\.print"):
        load_legacy_state_dict(hostile)


def test_zip_checkpoint_or_other_file_is_named(tmp_path: Path) -> None:
    other = tmp_path / "model.pth"
    other.write_bytes(b"PK\x03\x04 not a legacy file")
    with pytest.raises(ModelError, match=r"model\.pth"):
        load_legacy_state_dict(other)
