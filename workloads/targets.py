"""Bring-your-own-model targets: ``run --target`` and the ``aiperf_workbench.workloads``
entry-point group.

A target names a callable that returns a ``workloads.interface.Workload``:

    path/to/file.py:build       a Python file (imported under a private module name)
    package.module:build        an importable module
    NAME                        an entry point registered under ``ENTRY_POINT_GROUP``

``:build`` may be left out (the attribute defaults to ``build``). The callable takes no
argument, or one: the run's params dict. Discovery (``list_entry_points``) reads package
metadata only, so it is torch-free and imports no plugin; loading happens in the child. Any
failure to import or build comes back as one ``TargetError`` line naming the target and the
original exception; the child prints the traceback to its log.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from workloads.errors import TargetError, WorkbenchError

ENTRY_POINT_GROUP = "aiperf_workbench.workloads"
DEFAULT_ATTRIBUTE = "build"


@dataclass(frozen=True)
class TargetRef:
    kind: str  # "file" | "module" | "entry_point"
    location: str  # file path, module name or entry-point name
    attribute: str

    @property
    def display_name(self) -> str:
        """Short name stored as the session's workload (``my_target``, ``pkg.mod``, ``NAME``)."""
        if self.kind == "file":
            return Path(self.location).stem
        return self.location


@dataclass(frozen=True)
class EntryPointWorkload:
    name: str
    value: str  # "package.module:build"
    distribution: str | None


def parse_target(text: str) -> TargetRef:
    text = (text or "").strip()
    if not text:
        raise TargetError("empty --target", "use path/to/file.py:build or package.module:build")
    if ":" not in text and not text.endswith(".py") and _entry_point(text) is not None:
        return TargetRef("entry_point", text, DEFAULT_ATTRIBUTE)
    # A Windows drive letter ("C:\\x.py:build") has a colon too: split on the last one.
    location, sep, attribute = text.rpartition(":")
    if not sep or not attribute.isidentifier():
        location, attribute = text, DEFAULT_ATTRIBUTE
    if location.endswith(".py") or "/" in location or "\\" in location:
        return TargetRef("file", location, attribute)
    if all(part.isidentifier() for part in location.split(".")):
        return TargetRef("module", location, attribute)
    raise TargetError(f"cannot read target {text!r}",
                      "use path/to/file.py:build, package.module:build or an entry-point name")


def check_target(text: str) -> str:
    """Validate a target in the front end (torch-free, nothing imported); returns it with a
    file path made absolute so the stored spec reruns from any folder."""
    ref = parse_target(text)
    if ref.kind != "file":
        return text.strip()
    path = Path(ref.location).expanduser()
    if not path.is_file():
        raise TargetError(f"target file {ref.location} does not exist",
                          "give a path to a .py file, relative to the working directory")
    return f"{path.resolve()}:{ref.attribute}"


def list_entry_points() -> list[EntryPointWorkload]:
    """Workloads third-party packages register (metadata only: no plugin is imported)."""
    found: dict[str, EntryPointWorkload] = {}
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = getattr(entry, "dist", None)
        found.setdefault(entry.name, EntryPointWorkload(
            entry.name, entry.value, getattr(dist, "name", None) if dist else None))
    return sorted(found.values(), key=lambda e: e.name)


def _entry_point(name: str) -> Any:
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            return entry
    return None


def _describe(exc: BaseException) -> str:
    message = exc.one_line() if isinstance(exc, WorkbenchError) else " ".join(str(exc).split())
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def _import_file(path_text: str) -> Any:
    path = Path(path_text).expanduser().resolve()
    if not path.is_file():
        raise TargetError(f"target file {path_text} does not exist",
                          "give a path to a .py file, relative to the working directory")
    module_name = f"aiperf_target_{abs(hash(str(path))):x}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise TargetError(f"cannot import target file {path_text}: not a Python module")
    module = importlib.util.module_from_spec(spec)
    # Registered before exec so dataclasses/pickle inside the file can find their module;
    # its folder goes on sys.path so the file can import its siblings.
    sys.modules[module_name] = module
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(module_name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise TargetError(f"cannot import target {path_text}: {_describe(exc)}",
                          "see the run log for the traceback") from exc
    return module


def load_target(text: str) -> Any:
    """The callable the target names. TargetError (one line) when it cannot be loaded."""
    ref = parse_target(text)
    if ref.kind == "entry_point":
        entry = _entry_point(ref.location)
        try:
            return entry.load()
        except Exception as exc:
            raise TargetError(f"cannot load entry point {ref.location!r} ({entry.value}): "
                              f"{_describe(exc)}", "see the run log for the traceback") from exc
    if ref.kind == "file":
        module = _import_file(ref.location)
    else:
        try:
            module = importlib.import_module(ref.location)
        except Exception as exc:
            raise TargetError(f"cannot import target module {ref.location!r}: {_describe(exc)}",
                              "is it installed or on PYTHONPATH? see the run log") from exc
    function = getattr(module, ref.attribute, None)
    if function is None or not callable(function):
        public = sorted(n for n, v in vars(module).items()
                        if callable(v) and not n.startswith("_") and
                        getattr(v, "__module__", None) == module.__name__)
        raise TargetError(f"target {text!r} has no callable {ref.attribute!r}",
                          f"callables defined there: {', '.join(public) or 'none'}")
    return function


def build_target(text: str, params: dict[str, Any]) -> Any:
    """Call the target's build function and check it returned a Workload."""
    from workloads.interface import Workload  # torch: only in the child

    function = load_target(text)
    try:
        takes_params = _takes_argument(function)
        workload = function(params) if takes_params else function()
    except TargetError:
        raise
    except Exception as exc:
        raise TargetError(f"target {text!r} raised while building: {_describe(exc)}",
                          "see the run log for the traceback") from exc
    if not isinstance(workload, Workload):
        raise TargetError(f"target {text!r} returned {type(workload).__name__}, not a Workload",
                          "return an instance of a workloads.interface.Workload subclass")
    return workload


def _takes_argument(function: Any) -> bool:
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return False
    positional = [p for p in signature.parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
    return bool(positional)
