"""Outputs checked before any work: never an input, never over a file without --force, a folder that takes files."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.errors import ConfigError
from streamer.files import check_outputs, describe


def test_an_output_is_never_an_input(tmp_path: Path) -> None:
    source = tmp_path / "v.mp4"
    source.write_bytes(b"video")
    (tmp_path / "link.mp4").symlink_to(source)
    for output in (source, tmp_path / "link.mp4", tmp_path / "sub" / ".." / "v.mp4"):
        with pytest.raises(ConfigError, match=r"is an input; pick another output name"):
            check_outputs([output], [source], force=True)


def test_existing_outputs_need_force_or_append(tmp_path: Path) -> None:
    taken = tmp_path / "r.jsonl"
    taken.write_text("x\n")
    with pytest.raises(ConfigError, match=r"r\.jsonl already exists; use --force to replace it"):
        check_outputs([taken])
    check_outputs([taken], force=True)
    check_outputs([taken], append=True)
    assert taken.read_text() == "x\n"


def test_folders_missing_or_not_folders(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"is a directory; give a file name"):
        check_outputs([tmp_path])
    with pytest.raises(ConfigError, match=r"folder .*missing does not exist; create it first"):
        check_outputs([tmp_path / "missing" / "r.jsonl"])
    check_outputs([tmp_path / "missing" / "deeper" / "r.jsonl"], make_folders=True)
    assert not (tmp_path / "missing").exists(), "checking makes nothing"
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"file is a regular file, not a folder"):
        check_outputs([tmp_path / "file" / "r.jsonl"])
    with pytest.raises(ConfigError, match=r"two outputs have the same name"):
        check_outputs([tmp_path / "a", tmp_path / "b" / ".." / "a"])
    assert list(tmp_path.iterdir()) == [tmp_path / "file"], "the probe file is gone"


def test_describe() -> None:
    assert describe(Path("/dev/null")) == "a character device"
    assert describe(Path("/")) == "a directory"
    assert describe(Path("/no/such/thing")) == "missing"
