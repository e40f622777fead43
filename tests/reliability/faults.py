"""The fault-injection engine behind tests/reliability/test_fault_injection.py (a short pass)
and benchmarks/reliability.py (a long one). Everything runs the real CLI in subprocesses:

- kills: `aiperf-workbench run` whose child is a stand-in for ``workloads.run`` (same protocol,
  same watchdog, a grandchild in its group, no torch: a run costs ~1 s), killed at a seeded
  random moment with SIGKILL, SIGTERM, SIGHUP, SIGINT or SIGINT twice, aimed at the CLI or
  at the child; a few real runs (the torch child) the same way. Two workers share one home,
  so each run's start-up sweep races the other's live run.
- concurrent writers: a burst of `analyze --save` and `sessions list` on one home, some
  killed with SIGKILL mid-way.
- ENOSPC: runs, saves and exports on a full 2 MB tmpfs (root), else past RLIMIT_FSIZE.
- hostile names: a trace whose kernel and device names carry control characters, escape
  sequences, HTML and image links, through analyze/report/diff/advise and every Markdown
  exporter.

After each step the home is checked with the real CLI (whose start-up sweep runs first):
every acknowledged session (its id was printed) is listed, no row is left `running` or
`pending`, no folder lacks a row, no process of the run survives it, SQLite's integrity check
passes, and no command printed a traceback.
"""

from __future__ import annotations

import json
import os
import random
import re
import resource
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.reliability.tools import ROOT, TRACE, fill, is_root, kill_all, wait_gone

STUB_CHILD = r'''
import os, random, signal, subprocess, sys, time
from workloads import watchdog
from workloads.protocol import emit
from workloads.atomic import write_json_atomic  # (workloads.run would import torch)

signal.signal(signal.SIGINT, signal.default_int_handler)
watchdog.start_watchdog()
spec, out = sys.argv[1], sys.argv[2]
rng = random.Random(os.environ.get("AIPERF_STUB_SEED", "0"))
worker = subprocess.Popen([sys.executable, "-c",
    "from workloads import watchdog; import time; watchdog.start_watchdog(); time.sleep(120)"])
status, code = "failed", 1
try:
    emit("phase", phase="build", message="stand-in child")
    steps = rng.randint(3, 8)
    for i in range(steps):
        time.sleep(rng.uniform(0.05, 0.3))
        emit("step", phase="measure", i=i + 1, n=steps)
    ballast = int(os.environ.get("AIPERF_STUB_BALLAST", "0"))
    if ballast:
        write_json_atomic(__import__("pathlib").Path(out) / "big.json", {"x": "0" * ballast})
    status, code = "ok", 0
except KeyboardInterrupt:
    code = 130
except OSError as exc:
    print(f"stand-in: {exc}", file=sys.stderr)
result = {"status": status, "error": None if status == "ok" else "stand-in stopped",
          "metrics": {"latency_ms": {"median": 1.0, "n": 1}}}
try:
    write_json_atomic(__import__("pathlib").Path(out) / "result.json", result)
except OSError:
    code = 1
emit("done", status=status, error=None)
worker.kill()
sys.exit(code)
'''

# The real CLI with only its child swapped for the stand-in (a Ctrl-C while this driver itself
# imports is the driver's, so it leaves quietly like the CLI does).
DRIVER = r'''
import sys
try:
    from profilers import runner
    from workbench.cli import main
except KeyboardInterrupt:
    sys.exit(130)
stub = sys.argv[1]
runner.child_command = lambda spec_path, out_dir: [sys.executable, stub, str(spec_path), str(out_dir)]
sys.exit(main(sys.argv[2:]))
'''

SIGNALS = {"SIGKILL": [signal.SIGKILL], "SIGTERM": [signal.SIGTERM], "SIGHUP": [signal.SIGHUP],
           "SIGINT": [signal.SIGINT], "SIGINTx2": [signal.SIGINT, signal.SIGINT]}
ACK = re.compile(r"^(?:session|saved as session) (\d{8}-\d{6}-[0-9a-f]{6})", re.M)


@dataclass
class Tally:
    """What the runs showed; every list should stay empty."""

    invocations: int = 0
    kills: Counter = field(default_factory=Counter)
    exits: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    acknowledged: dict[str, set[str]] = field(default_factory=dict)  # home -> ids printed
    lost: list[str] = field(default_factory=list)
    left_running: list[str] = field(default_factory=list)
    wrongly_interrupted: list[str] = field(default_factory=list)
    folders_without_row: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    tracebacks: list[str] = field(default_factory=list)
    integrity_failures: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    unclean_terminal: list[str] = field(default_factory=list)
    unsafe_markdown: list[str] = field(default_factory=list)
    storage_failures: list[str] = field(default_factory=list)
    exports_checked: int = 0
    checks: int = 0
    phase_s: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def failures(self) -> dict[str, int]:
        return {name: len(getattr(self, name)) for name in (
            "lost", "left_running", "wrongly_interrupted", "folders_without_row", "orphans",
            "tracebacks", "integrity_failures", "hangs", "unclean_terminal", "unsafe_markdown",
            "storage_failures")}

    def to_dict(self) -> dict[str, Any]:
        return {"invocations": self.invocations, "kills": dict(sorted(self.kills.items())),
                "exit_codes": {str(k): v for k, v in sorted(self.exits.items())},
                "final_statuses": dict(sorted(self.statuses.items())),
                "acknowledged_sessions": sum(len(ids) for ids in self.acknowledged.values()),
                "home_checks": self.checks, "exports_checked": self.exports_checked,
                "phase_s": {k: round(v, 1) for k, v in self.phase_s.items()},
                **{f"{k}": v for k, v in self.failures().items()},
                "examples": {name: getattr(self, name)[:3] for name, n in self.failures().items()
                             if n}}


def env_for(marker: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIPERF_", "ANTHROPIC_"))}
    env.update({"PYTHONPATH": str(ROOT), "AIPERF_TEST_MARKER": marker, **extra})
    return env


def note_output(tally: Tally, what: str, text: str) -> None:
    if "Traceback" in text:
        with tally.lock:
            tally.tracebacks.append(f"{what}: {text[text.find('Traceback'):][:300]}")


def check_home(home: Path, tally: Tally, finished_normally: set[str] | None = None,
               others_live: bool = False) -> dict:
    """Open the home with the real CLI (its sweep runs first) and check every invariant.
    ``others_live``: another worker may be mid-run in this home, so a `running` row or a
    folder between its rename and its row is legitimate; the final check has none."""
    proc = subprocess.run([sys.executable, "-m", "workbench.cli", "--home", str(home),
                           "sessions", "list", "--limit", "100000"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env=env_for("check"))
    with tally.lock:
        tally.checks += 1
        tally.invocations += 1
    note_output(tally, "sessions list", proc.stdout + proc.stderr)
    listed: dict[str, str] = {}
    for line in proc.stdout.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 2:
            listed[parts[0]] = parts[1]
    with tally.lock:
        if proc.returncode != 0:
            tally.integrity_failures.append(f"sessions list exit {proc.returncode}: "
                                            f"{proc.stderr[-200:]}")
        tally.lost += [i for i in tally.acknowledged.get(str(home), ())
                       if i not in listed and i not in tally.lost]
        if not others_live:
            tally.left_running += [i for i, s in listed.items() if s in ("running", "pending")
                                   and i not in tally.left_running]
        for run_id in finished_normally or ():
            if listed.get(run_id) == "interrupted":
                tally.wrongly_interrupted.append(run_id)
    db = home / "sessions.db"
    if db.exists():
        folders = {p.name for p in (home / "runs").iterdir() if not p.name.startswith(".")}
        verdict, rows = _index_state(db)
        without_row = sorted(folders - rows)
        if without_row and others_live:  # a live run between its rename and its row
            time.sleep(1.0)
            without_row = [i for i in without_row if i not in _index_state(db)[1]]
        with tally.lock:
            if verdict != "ok":
                tally.integrity_failures.append(f"{home}: {verdict}")
            tally.folders_without_row += without_row
    return listed


def _index_state(db: Path) -> tuple[str, set[str]]:
    """SQLite's integrity verdict and the indexed ids, read-only (the disk may be full)."""
    from sessions.index_db import IndexDB

    with IndexDB(db, writable=False).connect() as conn:
        verdict = conn.execute("PRAGMA integrity_check").fetchone()[0]
        return verdict, {r[0] for r in conn.execute("SELECT id FROM runs")}


def _acknowledge(tally: Tally, home: Path, text: str) -> list[str]:
    ids = ACK.findall(text)
    with tally.lock:
        tally.acknowledged.setdefault(str(home), set()).update(ids)
    return ids


def _child_pids(marker: str, parent: int) -> list[int]:
    """Processes of this run other than the CLI itself (the child and its worker)."""
    from tests.reliability.tools import pids_with

    return [pid for pid in pids_with(marker) if pid != parent]


class _Output:
    """A process's stdout and stderr read as they come; ``acknowledged`` is set once the CLI
    printed a session id (the user has been told the session exists)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.out: list[str] = []
        self.err: list[str] = []
        self.acknowledged = threading.Event()
        self.threads = [threading.Thread(target=self._read, args=(proc.stdout, self.out, False),
                                         daemon=True),
                        threading.Thread(target=self._read, args=(proc.stderr, self.err, True),
                                         daemon=True)]
        for thread in self.threads:
            thread.start()

    def _read(self, stream: Any, into: list[str], watch: bool) -> None:
        for line in iter(stream.readline, ""):
            into.append(line)
            if watch and ACK.match(line):
                self.acknowledged.set()

    def join(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)


def killed_run(home: Path, rng: random.Random, tally: Tally, stub: Path | None,
               timeout: float = 60, shared: bool = False) -> None:
    """One `run`, a signal to the CLI or its child at a random moment, then the checks.
    Moments: for the CLI, a third while it starts (before or as it creates the session), the
    rest while the run goes (after the session id was printed); for the child, while it
    lives."""
    marker = f"fault-{uuid.uuid4().hex}"
    signame = rng.choice(list(SIGNALS))
    target = rng.choice(["cli", "cli", "child"])
    when = "starting" if target == "cli" and rng.random() < 0.33 else "running"
    span = 1.2 if stub else 5.0
    if stub is not None:
        argv = [sys.executable, "-c", DRIVER, str(stub), "--home", str(home), "run",
                "--preset", "tiny", "--no-telemetry", "--timeout", "30"]
    else:
        argv = [sys.executable, "-m", "workbench.cli", "--home", str(home), "run", "--preset",
                "tiny", "--repeat", "3", "--warmup", "1", "--no-telemetry", "--timeout", "60"]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env_for(marker, AIPERF_STUB_SEED=str(
        rng.random())), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    output = _Output(proc)
    deadline = time.monotonic() + 120
    if when == "starting":
        # not before 0.1 s: a Ctrl-C while the interpreter itself starts is Python's, not ours
        delay = rng.uniform(0.1, 1.0)
    elif target == "cli":
        while not output.acknowledged.wait(0.01) and proc.poll() is None \
                and time.monotonic() < deadline:
            pass
        delay = rng.uniform(0.0, span)
    else:  # the child's life is short: wait for it, then strike inside it
        while not _child_pids(marker, proc.pid) and proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        delay = rng.uniform(0.0, span / 2)
    time.sleep(delay)
    sent = False
    for index, sig in enumerate(SIGNALS[signame]):
        victims = [proc.pid] if target == "cli" else _child_pids(marker, proc.pid)[:1]
        for pid in victims:
            try:
                os.kill(pid, sig)
                sent = True
            except ProcessLookupError:
                pass
        if index == 0 and len(SIGNALS[signame]) > 1:
            time.sleep(rng.uniform(0.05, 0.6))
    label = f"{signame}->{target} ({when})"
    if not output.join(timeout):
        with tally.lock:
            tally.hangs.append(f"{label} after {delay:.2f}s")
        proc.kill()
        output.join(10)
    proc.wait(10)
    left = wait_gone(marker, 5.0)
    stdout, stderr = "".join(output.out), "".join(output.err)
    with tally.lock:
        tally.invocations += 1
        tally.kills[label + ("" if sent else ", after it ended")] += 1
        tally.exits[proc.returncode] += 1
        if left:
            tally.orphans.append(f"{label} after {delay:.2f}s: {len(left)} left")
    kill_all(left)
    if proc.returncode != -signal.SIGKILL:  # the CLI itself was not killed outright
        note_output(tally, f"run ({label})", stdout + stderr)
    ids = _acknowledge(tally, home, stderr)
    if target == "child":
        normal = set(ids) if proc.returncode is not None and proc.returncode >= 0 else set()
    else:
        normal = set(ids) if proc.returncode in (0, 1, 2, 130) else set()
    listed = check_home(home, tally, normal, others_live=shared)
    with tally.lock:
        for run_id in ids:
            tally.statuses[listed.get(run_id, "missing")] += 1


def concurrent_writers(home: Path, rng: random.Random, tally: Tally, writers: int = 12,
                       killed: int = 4) -> None:
    """A burst of saves and listings on one home; some saves killed at random."""
    marker = f"writers-{uuid.uuid4().hex}"
    procs = []
    for index in range(writers + 4):
        args = (["analyze", str(TRACE), "--save"] if index < writers else ["sessions", "list"])
        procs.append(subprocess.Popen([sys.executable, "-m", "workbench.cli", "--home",
                                       str(home), *args], cwd=ROOT, env=env_for(marker),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    victims = rng.sample(range(writers), killed)
    moments = sorted(rng.uniform(0.2, 2.5) for _ in victims)
    start = time.monotonic()
    for victim, moment in zip(victims, moments, strict=True):
        time.sleep(max(0.0, start + moment - time.monotonic()))
        procs[victim].kill()
    for index, proc in enumerate(procs):
        stdout, stderr = proc.communicate(timeout=300)
        with tally.lock:
            tally.invocations += 1
            tally.exits[proc.returncode] += 1
            if index in victims:
                tally.kills["SIGKILL->analyze --save"] += 1
        if proc.returncode != -signal.SIGKILL:
            note_output(tally, "concurrent writer", stdout + stderr)
        _acknowledge(tally, home, stderr)
    kill_all(wait_gone(marker, 5.0))
    listed = check_home(home, tally)
    with tally.lock:
        for status in listed.values():
            tally.statuses[status] += 1


def full_disk(base: Path, rng: random.Random, tally: Tally, stub: Path, runs: int = 4) -> None:
    """Runs, a save and an export on a full home: one line, nothing half-written."""
    from tests.reliability.tools import tmpfs

    marker = f"enospc-{uuid.uuid4().hex}"
    limit: dict[str, Any] = {}
    if is_root():
        context: Any = tmpfs(base / "disk", "2m")
    else:  # simulated: writes past RLIMIT_FSIZE fail with EFBIG
        (base / "disk").mkdir(parents=True, exist_ok=True)
        context = _NullContext(base / "disk")

        def cap() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))

        limit["preexec_fn"] = cap
    with context as disk:
        home = disk / "home"
        subprocess.run([sys.executable, "-m", "workbench.cli", "--home", str(home), "sessions",
                        "list"], cwd=ROOT, env=env_for(marker), capture_output=True, timeout=120)
        saved = subprocess.run([sys.executable, "-m", "workbench.cli", "--home", str(home),
                                "analyze", str(TRACE), "--save"], cwd=ROOT, env=env_for(marker),
                               capture_output=True, text=True, timeout=120)
        _record_storage(tally, "save before the disk fills", saved, (0,))
        exported = (_acknowledge(tally, home, saved.stderr) or ["missing"])[0]
        if is_root():
            fill(disk, 400 * 1024)
        for _ in range(runs):
            proc = subprocess.run(
                [sys.executable, "-c", DRIVER, str(stub), "--home", str(home), "run",
                 "--preset", "tiny", "--no-telemetry", "--timeout", "30"], cwd=ROOT,
                env=env_for(marker, AIPERF_STUB_BALLAST=str(rng.randint(100_000, 3_000_000)),
                         AIPERF_STUB_SEED=str(rng.random())),
                capture_output=True, text=True, timeout=120, **limit)
            _record_storage(tally, "run on a full disk", proc, (0, 1, 2))
            _acknowledge(tally, home, proc.stderr)
        if is_root():
            fill(disk, 0)
        for what, args, codes in (
                ("save on a full disk", ["analyze", str(TRACE), "--save"], (2,)),
                ("export on a full disk", ["report", exported, "--export", str(disk / "r.md")],
                 (2,) if is_root() else (0, 2)),
                ("list on a full disk", ["sessions", "list"], (0,))):
            proc = subprocess.run([sys.executable, "-m", "workbench.cli", "--home", str(home),
                                   *args], cwd=ROOT, env=env_for(marker), capture_output=True,
                                  text=True, timeout=120, **limit)
            _record_storage(tally, what, proc, codes)
        leftovers = [str(p) for p in home.rglob("*") if p.name.endswith(".tmp")
                     or p.name.startswith(".partial-") or p.name == "trace.json"]
        with tally.lock:
            tally.storage_failures += [f"left behind: {p}" for p in leftovers]
        kill_all(wait_gone(marker, 5.0))
        listed = check_home(home, tally)
        with tally.lock:
            for status in listed.values():
                tally.statuses[status] += 1


class _NullContext:
    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc: object) -> None:
        return None


def _record_storage(tally: Tally, what: str, proc: subprocess.CompletedProcess,
                    codes: tuple[int, ...]) -> None:
    with tally.lock:
        tally.invocations += 1
        tally.exits[proc.returncode] += 1
        if proc.returncode not in codes:
            tally.storage_failures.append(f"{what}: exit {proc.returncode}: {proc.stderr[-300:]}")
        if proc.returncode == 2 and len([ln for ln in proc.stderr.splitlines() if ln]) != 1:
            tally.storage_failures.append(f"{what}: not one line: {proc.stderr[-300:]}")
    note_output(tally, what, proc.stdout + proc.stderr)


def run_all(base: Path, seed: int, stub_runs: int, real_runs: int, writer_bursts: int,
            workers: int = 2) -> Tally:
    """The whole pass; ``stub_runs`` kills per worker (workers share one home)."""
    tally = Tally()
    base.mkdir(parents=True, exist_ok=True)
    stub = base / "stub_child.py"
    stub.write_text(STUB_CHILD)
    shared = base / "shared-home"

    def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        for _ in range(stub_runs):
            killed_run(shared, rng, tally, stub, shared=True)
        for _ in range(real_runs):
            killed_run(base / f"real-home-{index}", rng, tally, None, timeout=180)

    def phase(name: str, started: float) -> float:
        now = time.monotonic()
        tally.phase_s[name] = now - started
        return now

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    check_home(shared, tally)  # nothing runs now: no row may be left running
    started = phase("kills", started)
    rng = random.Random(seed)
    for burst in range(writer_bursts):
        concurrent_writers(base / f"writers-{burst}", rng, tally)
    started = phase("concurrent_writers", started)
    full_disk(base / "enospc", rng, tally, stub)
    started = phase("full_disk", started)
    from tests.reliability.faults_names import hostile_names

    hostile_names(base / "hostile", tally)
    phase("hostile_names", started)
    return tally


def write_results(tally: Tally, path: Path, config: dict[str, Any], wall_s: float) -> dict:
    doc = {"what": "fault injection against the real CLI (tests/reliability/faults.py)",
           "config": config, "cpus": os.cpu_count(), "root": is_root(),
           "wall_s": round(wall_s, 1), **tally.to_dict()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return doc
