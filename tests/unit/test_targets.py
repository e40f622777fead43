"""--target loading: files, modules, entry points, and every failure as one clear line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from workloads import targets
from workloads.errors import TargetError
from workloads.interface import Workload

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "my_target.py"


def _plugin_dist(tmp_path: Path) -> Path:
    """An installed-looking distribution registering one workload entry point."""
    (tmp_path / "byo_plugin_mod.py").write_text(
        f"import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('ex', {str(EXAMPLE)!r})\n"
        f"ex = importlib.util.module_from_spec(spec); spec.loader.exec_module(ex)\n"
        f"def make(params):\n    return ex.build(params)\n")
    info = tmp_path / "byo_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: byo-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        f"[{targets.ENTRY_POINT_GROUP}]\nbyo-tiny = byo_plugin_mod:make\n")
    return tmp_path


@pytest.mark.parametrize("text,kind,location,attribute", [
    ("examples/my_target.py:build", "file", "examples/my_target.py", "build"),
    ("examples/my_target.py", "file", "examples/my_target.py", "build"),
    ("./t.py:make_it", "file", "./t.py", "make_it"),
    ("pkg.module:build", "module", "pkg.module", "build"),
    ("pkg.module", "module", "pkg.module", "build"),
])
def test_parse_target(text, kind, location, attribute) -> None:
    ref = targets.parse_target(text)
    assert (ref.kind, ref.location, ref.attribute) == (kind, location, attribute)


def test_bad_target_text_is_refused() -> None:
    with pytest.raises(TargetError, match="cannot read target"):
        targets.parse_target("not a target!")
    with pytest.raises(TargetError, match="does not exist"):
        targets.check_target("nowhere/at_all.py:build")


def test_example_file_builds_a_working_workload() -> None:
    workload = targets.build_target(f"{EXAMPLE}:build", {"batch": 1, "prompt_len": 8})
    assert isinstance(workload, Workload)
    workload.build(torch.device("cpu"), torch.float32, {}, seed=0)
    inputs = workload.make_inputs(0)
    assert inputs.shape == (1, 8)
    outputs = workload.parity_outputs(inputs)
    assert outputs.logits.shape == (4, 1, 256)
    assert workload.step(inputs).shape == (1, 256)


def test_check_target_makes_the_file_path_absolute(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    assert targets.check_target("examples/my_target.py") == f"{EXAMPLE}:build"


def test_module_target_and_argumentless_build(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "byo_mod_noargs.py").write_text(
        f"import importlib.util\n"
        f"spec = importlib.util.spec_from_file_location('ex2', {str(EXAMPLE)!r})\n"
        f"ex = importlib.util.module_from_spec(spec); spec.loader.exec_module(ex)\n"
        f"def build():\n    return ex.MyWorkload({{'vocab': 64}})\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    workload = targets.build_target("byo_mod_noargs:build", {"ignored": 1})
    assert workload.vocab == 64


@pytest.mark.parametrize("body,needle", [
    ("import not_a_real_module_xyz\n", "ModuleNotFoundError: No module named"),
    ("def build(:\n", "SyntaxError"),
    ("def other():\n    pass\n", "has no callable 'build'"),
    ("def build():\n    return 42\n", "returned int, not a Workload"),
    ("def build():\n    raise RuntimeError('weights missing')\n",
     "raised while building: RuntimeError: weights missing"),
])
def test_failures_are_one_line_target_errors(tmp_path: Path, body: str, needle: str) -> None:
    path = tmp_path / "target.py"
    path.write_text(body)
    with pytest.raises(TargetError) as caught:
        targets.build_target(f"{path}:build", {})
    line = caught.value.one_line()
    assert needle in line and "\n" not in line


def test_missing_module_is_a_target_error() -> None:
    with pytest.raises(TargetError, match="cannot import target module"):
        targets.load_target("no_such_pkg_xyz.models:build")


def test_entry_points_are_listed_without_import_and_load(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.syspath_prepend(str(_plugin_dist(tmp_path)))
    listed = {e.name: e for e in targets.list_entry_points()}
    assert listed["byo-tiny"].value == "byo_plugin_mod:make"
    assert listed["byo-tiny"].distribution == "byo-plugin"
    assert "byo_plugin_mod" not in sys.modules  # listing imports nothing
    assert targets.parse_target("byo-tiny").kind == "entry_point"
    assert targets.parse_target("byo_tiny").kind == "module"  # not registered under that name
    workload = targets.build_target("byo-tiny", {"vocab": 32})
    assert isinstance(workload, Workload) and workload.vocab == 32


def test_broken_entry_point_is_a_target_error(tmp_path: Path, monkeypatch) -> None:
    dist = _plugin_dist(tmp_path)
    (dist / "byo_plugin_broken.py").write_text("raise ImportError('needs cuda extras')\n")
    entry_points = dist / "byo_plugin-0.1.dist-info" / "entry_points.txt"
    entry_points.write_text(entry_points.read_text().replace("byo_plugin_mod", "byo_plugin_broken"))
    monkeypatch.syspath_prepend(str(dist))
    with pytest.raises(TargetError, match="cannot load entry point 'byo-tiny'.*cuda"):
        targets.build_target("byo-tiny", {})
