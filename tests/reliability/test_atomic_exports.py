"""Defect 2: exports replaced whatever was at the path (a symlink, a FIFO, a device node —
as root even /dev/full), and files came out owner-only (0600). One writer now: normal modes,
only regular files replaced, a one-line error otherwise."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.reliability.tools import cli, is_root, one_line_error, saved_session
from workloads.atomic import write_text_atomic
from workloads.errors import UnsafeTargetError


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    home = tmp_path_factory.mktemp("home")
    return home, saved_session(home)


def _export(home: Path, run_id: str, target: Path) -> str:
    return one_line_error(cli(home, "report", run_id, "--export", str(target)))


def test_export_never_replaces_a_symlink(session, tmp_path: Path) -> None:
    home, run_id = session
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    link = tmp_path / "out.md"
    link.symlink_to(victim)
    line = _export(home, run_id, link)
    assert "symlink" in line and str(link) in line
    assert link.is_symlink() and os.readlink(link) == str(victim)
    assert victim.read_text() == "keep me\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_export_never_replaces_a_fifo(session, tmp_path: Path) -> None:
    home, run_id = session
    fifo = tmp_path / "out.md"
    os.mkfifo(fifo)
    assert "FIFO" in _export(home, run_id, fifo)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


@pytest.mark.skipif(not is_root(), reason="making a device node needs root")
def test_export_never_replaces_a_device_node(session, tmp_path: Path) -> None:
    home, run_id = session
    full = tmp_path / "full"  # a copy of /dev/full (char 1,7): never the machine's own
    os.mknod(full, 0o666 | stat.S_IFCHR, os.makedev(1, 7))
    assert "device" in _export(home, run_id, full)
    info = os.lstat(full)
    assert stat.S_ISCHR(info.st_mode) and info.st_rdev == os.makedev(1, 7)


def test_export_and_store_files_follow_the_umask(session, tmp_path: Path) -> None:
    home, run_id = session
    out = tmp_path / "report.md"
    proc = cli(home, "report", run_id, "--export", str(out))
    assert proc.returncode == 0, proc.stderr
    umask = os.umask(0)
    os.umask(umask)
    expected = 0o666 & ~umask
    run_dir = home / "runs" / run_id
    for path in (out, run_dir / "record.json", run_dir / "spec.json"):
        assert stat.S_IMODE(os.stat(path).st_mode) == expected, (path, oct(os.stat(path).st_mode))
    # a file the user made private stays private when it is written again
    os.chmod(out, 0o600)
    assert cli(home, "report", run_id, "--export", str(out)).returncode == 0
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600


def test_the_child_writes_result_json_with_the_same_writer(tmp_path: Path) -> None:
    import workloads.run as child_entry

    assert child_entry.write_text_atomic is write_text_atomic  # one writer, not a copy
    target = tmp_path / "result.json"
    child_entry.write_json_atomic(target, {"a": float("nan"), "b": 1})
    assert target.read_text() == '{\n  "a": null,\n  "b": 1\n}\n'


def test_writer_refuses_a_folder_and_leaves_no_temporary(tmp_path: Path) -> None:
    folder = tmp_path / "out.md"
    folder.mkdir()
    with pytest.raises(UnsafeTargetError, match="folder"):
        write_text_atomic(folder, "x")
    assert folder.is_dir() and list(tmp_path.iterdir()) == [folder]
