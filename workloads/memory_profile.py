"""``--profiler memory``: where the memory goes, by phase and by kind.

CUDA: the caching allocator's history is recorded (``torch.cuda.memory._record_memory_history``)
from the build through the measured steps; the snapshot is saved as memory_snapshot.pickle
(open it at https://pytorch.org/memory_viz). Phase boundaries are marked by allocating a
small tensor whose address is found again in the trace. Replaying the trace gives:
  - peak allocated per phase (build, reference, parity, prepare, warmup, measure);
  - at the measured steps' peak, live bytes by kind: ``weights`` (blocks holding the model's
    parameters), ``kv_cache`` (blocks holding tensors the workload keeps in a ``*cache*``
    attribute), ``activations`` (allocated during the measured step), ``workspace`` (everything
    else that persists across steps: cuBLAS/cuDNN workspaces, RoPE tables, inputs, pools);
  - top allocation sites (first frame outside torch) of the blocks live at that peak;
  - fragmentation: reserved vs allocated (and the allocator's inactive split bytes).
CPU: peak RSS per phase (Linux: VmHWM, reset at each phase through /proc/self/clear_refs),
weights and KV cache from the tensors' sizes, activations = the measured phase's peak RSS
above its starting RSS; workspace is n/a.
"""

from __future__ import annotations

import pickle
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch

SNAPSHOT_FILE = "memory_snapshot.pickle"
MAX_ENTRIES = 2_000_000
MARKER_BYTES = 4096 * 3 + 512  # an odd size, easy to tell apart in the trace
KINDS = ("weights", "kv_cache", "activations", "workspace")


def tensor_blocks(tensors: list[torch.Tensor]) -> list[tuple[int, int]]:
    """Unique (start, nbytes) of the storages behind ``tensors``."""
    seen: dict[int, int] = {}
    for tensor in tensors:
        storage = tensor.untyped_storage()
        seen[storage.data_ptr()] = max(seen.get(storage.data_ptr(), 0), storage.nbytes())
    return sorted(seen.items())


def cache_tensors(root: Any, depth: int = 4) -> list[torch.Tensor]:
    """Tensors held under attributes named like ``*cache*`` of the workload or its model."""
    found: list[torch.Tensor] = []
    seen: set[int] = set()

    def collect(value: Any, level: int) -> None:
        if id(value) in seen or level > depth:
            return
        seen.add(id(value))
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, list | tuple):
            for item in value:
                collect(item, level + 1)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item, level + 1)
        elif hasattr(value, "__dict__") and not isinstance(value, torch.nn.Module | type):
            for item in vars(value).values():
                collect(item, level + 1)

    for owner in (root, getattr(root, "model", None)):
        if owner is None:
            continue
        for name, value in vars(owner).items():
            if "cache" in name.lower():
                collect(value, 0)
    return found


def model_tensors(workload: Any) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    model = getattr(workload, "model", None)
    params: list[torch.Tensor] = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
    return params, cache_tensors(workload)


def _bytes(blocks: list[tuple[int, int]]) -> int:
    return sum(size for _, size in blocks)


class MemoryProfiler:
    """Mark phases with ``mark(name)``; ``finish(workload)`` returns the summary dict."""

    def __init__(self, device: torch.device, out_dir: Path) -> None:
        self.device, self.out_dir = device, out_dir
        self.on_cuda = device.type == "cuda"
        self.phases: list[dict[str, Any]] = []
        self._markers: list[int] = []

    def start(self) -> MemoryProfiler:
        if self.on_cuda:
            torch.cuda.memory._record_memory_history(max_entries=MAX_ENTRIES)
        return self

    def mark(self, phase: str) -> None:
        if self.on_cuda:
            marker = torch.empty(MARKER_BYTES, dtype=torch.uint8, device=self.device)
            self._markers.append(marker.data_ptr())
            del marker
            self.phases.append({"phase": phase})
            return
        self._close_cpu_phase()
        self.phases.append({"phase": phase, "start_rss": _status_kb("VmRSS")})
        _reset_peak_rss()

    def _close_cpu_phase(self) -> None:
        if self.phases and "peak_rss" not in self.phases[-1]:
            self.phases[-1]["peak_rss"] = _status_kb("VmHWM")
            self.phases[-1]["end_rss"] = _status_kb("VmRSS")

    def finish(self, workload: Any) -> tuple[dict[str, Any], str | None]:
        """(summary, snapshot artifact or None)."""
        params, caches = model_tensors(workload)
        weights, kv = tensor_blocks(params), tensor_blocks(caches)
        if not self.on_cuda:
            self._close_cpu_phase()
            return cpu_summary(self.phases, _bytes(weights), _bytes(kv)), None
        torch.cuda.synchronize(self.device)
        snapshot = torch.cuda.memory._snapshot()
        torch.cuda.memory._record_memory_history(enabled=None)
        with open(self.out_dir / SNAPSHOT_FILE, "wb") as stream:
            pickle.dump(snapshot, stream)
        stats = torch.cuda.memory_stats(self.device)
        summary = cuda_summary(snapshot, self._markers, [p["phase"] for p in self.phases],
                               weights, kv, self.device.index or 0)
        summary["fragmentation"]["inactive_split_bytes_peak"] = \
            stats.get("inactive_split_bytes.all.peak")
        summary["weights_bytes"], summary["kv_cache_bytes"] = _bytes(weights), _bytes(kv)
        return summary, SNAPSHOT_FILE


def _status_kb(key: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # Linux >= 4.0: resets VmHWM
        return True
    except OSError:
        return False


def cpu_summary(phases: list[dict[str, Any]], weights: int, kv: int) -> dict[str, Any]:
    measure = next((p for p in reversed(phases) if p["phase"] == "measure"), None)
    activations = None
    if measure and measure.get("peak_rss") is not None and measure.get("start_rss") is not None:
        activations = max(measure["peak_rss"] - measure["start_rss"], 0)
    return {
        "device": "cpu", "source": "peak RSS per phase (/proc/self/status VmHWM)",
        "phases": [{"phase": p["phase"], "peak_bytes": p.get("peak_rss"),
                    "start_bytes": p.get("start_rss"), "end_bytes": p.get("end_rss")}
                   for p in phases],
        "at_peak": {"weights": weights, "kv_cache": kv, "activations": activations,
                    "workspace": None},
        "weights_bytes": weights, "kv_cache_bytes": kv,
        "top_sites": [], "fragmentation": {"reserved_bytes": None, "allocated_bytes": None,
                                           "fraction_unused": None},
    }


def _site(frames: list[dict[str, Any]]) -> str:
    for frame in frames or []:
        name = frame.get("filename", "")
        if "/torch/" not in name and not name.startswith("<") and name.endswith(".py"):
            return f"{Path(name).name}:{frame.get('line')} {frame.get('name')}"
    return "(no python frame)" if not frames else "(inside torch)"


def cuda_summary(snapshot: dict[str, Any], markers: list[int], phase_names: list[str],
                 weights: list[tuple[int, int]], kv: list[tuple[int, int]],
                 device_index: int = 0) -> dict[str, Any]:
    """Replay the allocator trace: peak per phase and what is live at the measured peak."""
    traces = snapshot.get("device_traces") or []
    trace = traces[device_index] if device_index < len(traces) else []
    # Live blocks now (from segments), then undo the trace to get the blocks live before it.
    live: dict[int, tuple[int, list]] = {}
    for segment in snapshot.get("segments", []):
        if segment.get("device", device_index) != device_index:
            continue
        address = segment["address"]
        for block in segment.get("blocks", []):
            if block["state"] in ("active_allocated", "active_pending_free"):
                live[address] = (block["size"], block.get("frames") or [])
            address += block["size"]
    for entry in reversed(trace):
        if entry["action"] == "alloc":
            live.pop(entry["addr"], None)
        elif entry["action"] == "free_completed":
            live[entry["addr"]] = (entry["size"], entry.get("frames") or [])
    # Phase index of each trace entry, from the marker allocations in order.
    boundaries, wanted = [], 0
    for index, entry in enumerate(trace):
        if wanted < len(markers) and entry["action"] == "alloc" and \
                entry["addr"] == markers[wanted] and entry["size"] >= MARKER_BYTES:
            boundaries.append(index)
            wanted += 1
    complete = len(boundaries) == len(markers)
    allocated = sum(size for size, _ in live.values())
    born: dict[int, int] = dict.fromkeys(live, -1)  # phase in which each block was allocated
    phases: list[dict[str, Any]] = [{"phase": name, "peak_bytes": None, "end_bytes": None}
                                    for name in phase_names]
    measure_phase = phase_names.index("measure") if "measure" in phase_names else None
    best: tuple[int, dict[int, tuple[int, list]] | None] = (-1, None)
    phase = -1
    marker_entries, pending_marker = set(boundaries), None
    for index, entry in enumerate(trace):
        while phase + 1 < len(boundaries) and boundaries[phase + 1] <= index:
            if phase >= 0:
                phases[phase]["end_bytes"] = allocated
            phase += 1
        action = entry["action"]
        if index in marker_entries:  # the phase markers are not the workload's memory
            pending_marker = entry["addr"]
            continue
        if action == "free_completed" and entry["addr"] == pending_marker:
            pending_marker = None
            continue
        if action == "alloc":
            live[entry["addr"]] = (entry["size"], entry.get("frames") or [])
            born[entry["addr"]] = phase
            allocated += entry["size"]
        elif action == "free_completed" and entry["addr"] in live:
            allocated -= live.pop(entry["addr"])[0]
        else:
            continue
        if phase >= 0:
            current = phases[phase]["peak_bytes"] or 0
            phases[phase]["peak_bytes"] = max(current, allocated)
            if phase == measure_phase and allocated > best[0]:
                best = (allocated, dict(live))
    if 0 <= phase < len(phases):
        phases[phase]["end_bytes"] = allocated
    at_peak, sites = _classify(best[1], born, measure_phase, weights, kv)
    reserved = sum(s["total_size"] for s in snapshot.get("segments", [])
                   if s.get("device", device_index) == device_index)
    return {
        "device": "cuda", "source": "torch.cuda.memory._record_memory_history",
        "complete": complete, "phases": phases, "peak_bytes": best[0] if best[1] else None,
        "at_peak": at_peak, "top_sites": sites,
        "fragmentation": {"reserved_bytes": reserved, "allocated_bytes": allocated,
                          "fraction_unused": 1 - allocated / reserved if reserved else None},
    }


def _classify(live: dict[int, tuple[int, list]] | None, born: dict[int, int],
              measure_phase: int | None, weights: list[tuple[int, int]],
              kv: list[tuple[int, int]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if live is None:
        return dict.fromkeys(KINDS), []

    def inside(address: int, size: int, ranges: list[tuple[int, int]]) -> bool:
        return any(address <= start < address + size for start, _ in ranges)

    totals = dict.fromkeys(KINDS, 0)
    by_site: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for address, (size, frames) in live.items():
        if inside(address, size, weights):
            kind = "weights"
        elif inside(address, size, kv):
            kind = "kv_cache"
        elif born.get(address) == measure_phase:
            kind = "activations"
        else:
            kind = "workspace"
        totals[kind] += size
        entry = by_site[(kind, _site(frames))]
        entry[0] += size
        entry[1] += 1
    rows: list[dict[str, Any]] = [{"kind": k, "site": s, "bytes": v[0], "blocks": v[1]}
                                  for (k, s), v in by_site.items()]
    sites = sorted(rows, key=lambda e: -e["bytes"])
    return totals, sites[:15]


class NoMemoryProfile:
    """Stand-in when the profiler is not ``memory``: every call does nothing."""

    def start(self) -> NoMemoryProfile:
        return self

    def mark(self, phase: str) -> None:
        return None


def for_run(profiler: str, device: torch.device, out_dir: Path) -> Any:
    return MemoryProfiler(device, out_dir).start() if profiler == "memory" else NoMemoryProfile()
