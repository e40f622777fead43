"""The CLI commands. Each returns an exit code; bad input raises WorkbenchError (exit 2)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from sessions.records import RunStatus, SessionKind
from workbench.cli.main import stop_event
from workbench.export.escape import term_line, term_text
from workloads.errors import WorkbenchError
from workloads.spec import AUTO, replays_kernels

EXIT_OK, EXIT_FAILED = 0, 1


def _store(args: argparse.Namespace):
    from sessions.store import SessionStore

    return SessionStore(args.home)


def _write_output(path: Path, text: str) -> None:
    if str(path) == "-":
        sys.stdout.write(term_text(text))
        return
    from sessions.index_db import describe_os_error
    from workloads.atomic import write_text_atomic

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(path, text)  # never over a symlink, a FIFO or a device: one line
    except OSError as exc:
        raise describe_os_error(exc, f"cannot write {path}") from None


def _figures(report: Path, analysis: Any) -> dict[str, str]:
    """The roofline and budget SVGs beside a report written to a file (none for stdout)."""
    from sessions.index_db import describe_os_error
    from workbench.export.svg_figures import write_figures

    try:
        return write_figures(report, analysis)
    except OSError as exc:  # a full disk, a read-only folder: one line that says which
        raise describe_os_error(exc, f"cannot write the figures beside {report}") from None


def cmd_run(args: argparse.Namespace) -> int:
    from profilers.runner import run
    from workbench.api.pipeline.analysis import load_run_analysis
    from workbench.cli.progress import CliProgress
    from workloads.catalog import parse_layers
    from workloads.spec import RunSpec

    params: dict[str, Any] = dict(args.param)
    for key in ("batch", "prompt_len", "new_tokens", "dtype", "mode"):
        value = getattr(args, key)
        if value is not None:
            params[key] = value
    spec = RunSpec(workload=args.workload, preset=args.preset, layers=parse_layers(args.layers, args.workload),
                   profiler=args.profiler, params=params,
                   repeat=args.repeat if args.repeat is not None else AUTO,
                   warmup=args.warmup if args.warmup is not None else AUTO,
                   timeout_s=args.timeout, seed=args.seed,
                   device=args.device, label=args.label,
                   profiler_options=dict(args.profiler_option), telemetry=not args.no_telemetry,
                   target=getattr(args, "target", "") or "",
                   checkpoint=getattr(args, "checkpoint", "") or "",
                   nproc_per_node=getattr(args, "nproc_per_node", 1) or 1,
                   nnodes=getattr(args, "nnodes", 1) or 1,
                   rdzv_endpoint=getattr(args, "rdzv_endpoint", "") or "")
    if spec.target:
        from workloads.targets import parse_target

        spec.workload, spec.preset = parse_target(spec.target).display_name, ""
    from workloads.errors import StorageError

    store = _store(args)
    progress = CliProgress(quiet=args.quiet)
    started: list[str] = []

    def on_event(event: dict[str, Any]) -> None:
        if event.get("event") == "session":
            started.append(str(event.get("run_id")))
        progress.on_event(event)

    try:
        record = run(spec, store, on_event=on_event, cancel=stop_event())
    except StorageError as exc:  # a full or read-only home: exit 2, or 1 once the run began
        if not started:
            raise
        print(f"aiperf-workbench: error: session {started[0]}: {term_line(exc.one_line())}",
              file=sys.stderr)
        return EXIT_FAILED
    _print_run_summary(record)
    if args.export or args.json:
        analysis = load_run_analysis(store, record)
        if args.export:
            from workbench.export.markdown import render_run_report

            figures = _figures(args.export, analysis)
            _write_output(args.export, render_run_report(record, analysis, figures))
            print(f"report written to {args.export}", file=sys.stderr)
        if args.json:
            from workbench.export.json_export import analysis_to_dict, dumps

            _write_output(args.json, dumps({"record": record.to_dict(),
                                            "analysis": analysis_to_dict(analysis)}))
    if record.status is RunStatus.OK:
        return EXIT_OK
    if record.error_type == "WorkbenchError":
        return 2  # a user mistake found inside the child (e.g. a layer's requirement unmet)
    return 130 if record.status is RunStatus.CANCELLED else EXIT_FAILED


def _print_run_summary(record: Any) -> None:
    from workbench.export.fmt import fmt_bytes, fmt_num

    m = record.metrics
    lat = m.get("latency_ms") or {}
    print(f"session {record.id}: {record.status}"
          + (f" — {term_line(record.error)}" if record.error else ""))
    if lat:
        print(f"  {m.get('step') or 'step'} latency median {fmt_num(lat.get('median'), 4, 'ms')} "
              f"(p10 {fmt_num(lat.get('p10'), 4)}, p90 {fmt_num(lat.get('p90'), 4)}, "
              f"p99 {fmt_num(lat.get('p99'), 4)}, n={lat.get('n')})")
        print(f"  throughput {fmt_num(m.get('tokens_per_s'), 4, 'tok/s')}, "
              f"peak memory {fmt_bytes(m.get('peak_mem_bytes'))}")
        if replays_kernels(record.profiler):
            print(f"  (timed under {record.profiler}, which serializes and replays kernels: not a "
                  "performance figure; use --profiler timer for speed)")
    parity = record.parity
    scope = record.details.get("profile_scope")
    if scope:
        print(f"  profiled: {term_line(scope.get('what'))}")
    if parity.get("skipped"):
        print(f"  parity vs L0: skipped ({parity['skipped']})")
    elif parity:
        print(f"  parity vs L0: {'ok' if parity.get('ok') else 'FAILED'} "
              f"(max rel err {fmt_num(parity.get('max_rel_err'), 3)}, "
              f"top-1 agreement {fmt_num((parity.get('top1_agreement') or 0) * 100, 4, '%')})")
    router = record.details.get("router")
    if router:  # MoE workloads: router health against the seed's targets
        from workloads.router_health import summary_lines

        print("\n".join("  " + line for line in summary_lines(router)))


def cmd_sessions(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.sessions_command == "delete":
        store.delete(args.id)
        print(f"deleted {args.id}")
        return EXIT_OK
    if args.sessions_command not in (None, "list"):
        raise WorkbenchError(f"unknown action {args.sessions_command!r}", "use list or delete")
    rows = store.list(workload=getattr(args, "workload", None), status=getattr(args, "status", None),
                      limit=getattr(args, "limit", 50))
    if not rows:
        print(f"no sessions in {store.home}")
        return EXIT_OK
    from workbench.export.fmt import fmt_num

    header = f"{'id':<23} {'status':<9} {'workload':<9} {'preset':<13} {'layers':<14} {'profiler':<8} {'result':>14}"
    print(header)
    for r in rows:
        result = f"{fmt_num(r.headline, 4)} {r.headline_unit}".strip()
        print(term_line(f"{r.id:<23} {r.status:<9} {r.workload or r.kind:<9} "
                        f"{r.preset:<13} {r.layers:<14} {r.profiler:<8} {result:>14}"))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from workbench.export.json_export import dumps

    record = _store(args).get(args.id)
    sys.stdout.write(dumps(record.to_dict()))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from workbench.api.pipeline.analysis import load_run_analysis
    from workbench.export.markdown import render_run_report

    store = _store(args)
    record = store.get(args.id)
    analysis = load_run_analysis(store, record)
    if args.json:
        from workbench.export.json_export import analysis_to_dict, dumps

        _write_output(args.json, dumps({"record": record.to_dict(),
                                        "analysis": analysis_to_dict(analysis)}))
    if args.export:
        text = render_run_report(record, analysis, _figures(args.export, analysis))
        _write_output(args.export, text)
        print(f"report written to {args.export}", file=sys.stderr)
    elif not args.json:
        sys.stdout.write(term_text(render_run_report(record, analysis)))
    return EXIT_OK


def cmd_analyze(args: argparse.Namespace) -> int:
    from profilers.parsers._io import InputLimits, limited_input
    from sessions.store import default_home
    from workbench.api.pipeline.analysis import analyze_paths
    from workbench.export.markdown import render_artifact_report

    default = InputLimits()
    limits = (InputLimits(None, None) if getattr(args, "no_limits", False) else
              InputLimits(getattr(args, "max_bytes", default.max_bytes),
                          getattr(args, "max_events", default.max_events)))
    with limited_input(limits):
        parsed, analysis = analyze_paths(list(args.paths), top=args.top,
                                         home=args.home or default_home())
    paths = [str(p) for p in args.paths]
    hta = _hta_comparison(args, parsed, analysis) if getattr(args, "hta", False) else None
    if args.json:
        from workbench.export.json_export import analysis_to_dict, dumps

        _write_output(args.json, dumps({**analysis_to_dict(analysis),
                                        **({"hta": hta} if hta is not None else {})}))
    figures = _figures(args.export, analysis) if args.export else None
    text = render_artifact_report(paths, analysis, figures)
    if hta is not None:
        from workbench.export.hta_md import render_hta_section

        text += "\n" + render_hta_section(hta)
    if args.export:
        _write_output(args.export, text)
    if not args.json or str(args.json) != "-":
        sys.stdout.write(term_text(text))
    if args.save:
        _save_analysis(args, paths, parsed, analysis)
    return EXIT_OK


def _hta_comparison(args: argparse.Namespace, parsed: Any, analysis: Any) -> Any:
    from analyzers.hta_compare import compare_with_hta
    from workbench.api.pipeline.hta_runner import run_hta

    if parsed.kind not in ("kineto", "kineto_dir"):
        raise WorkbenchError(f"--hta reads Kineto traces, not {parsed.kind}",
                             "drop --hta for ncu / nsys artifacts")
    return compare_with_hta(analysis.kernels, analysis.temporal, parsed.runtime,
                            run_hta(list(args.paths)))


_ROLE_OF_KIND = {"kineto": "trace", "kineto_dir": "trace", "ncu_csv": "ncu_csv",
                 "ncu_rep": "ncu_rep", "nsys_sqlite": "nsys_sqlite"}


def _save_analysis(args: argparse.Namespace, paths: list[str], parsed: Any, analysis: Any) -> None:
    """Store the analyzed artifacts as a session (kind "analysis"): the files are copied into
    the run folder, so the session opens again later without the originals. All or nothing:
    the copies go to a staging folder and the session appears only once they are complete."""
    import shutil
    import time

    store = _store(args)
    role = _ROLE_OF_KIND.get(parsed.kind, "artifact")
    sources = [Path(p) for p in args.paths]
    record = store.new_record(None, SessionKind.ANALYSIS)
    record.inputs, record.artifact_format = list(paths), parsed.kind

    def fill(run_dir: Path, record: Any) -> None:
        if len(sources) == 1 and sources[0].is_file():
            shutil.copy2(sources[0], run_dir / sources[0].name)
            record.artifacts[role] = sources[0].name
        elif role == "trace":  # per-rank traces (a folder, or several files): one trace folder
            inputs = run_dir / "inputs"
            for src in sources:
                if src.is_dir():
                    shutil.copytree(src, inputs, dirs_exist_ok=True)
                else:
                    inputs.mkdir(exist_ok=True)
                    shutil.copy2(src, inputs / src.name)
            record.artifacts[role] = "inputs"
        else:  # several ncu / nsys files: keep the first as the session's artifact
            shutil.copy2(sources[0], run_dir / sources[0].name)
            record.artifacts[role] = sources[0].name
        record.status = RunStatus.OK
        record.finished_at = time.time()

    record = store.add_complete(record, fill)
    print(f"saved as session {record.id}", file=sys.stderr)


def cmd_workloads(args: argparse.Namespace) -> int:
    from workloads.catalog import LAYERS, list_workloads

    for info in list_workloads():
        print(f"{info.name:<10} {info.title}")
        print(f"{'':<10} {info.description}")
        print(f"{'':<10} presets: {', '.join(info.presets)} (default {info.default_preset})")
    from workloads.targets import ENTRY_POINT_GROUP, list_entry_points

    plugins = list_entry_points()
    print(f"\nplugin workloads (entry points {ENTRY_POINT_GROUP!r}; run with --target NAME):")
    for plugin in plugins:
        print(f"  {plugin.name:<12} {plugin.value}"
              + (f"  [{plugin.distribution}]" if plugin.distribution else ""))
    if not plugins:
        print("  none installed")
    print("\nlayers:")
    for layer in LAYERS.values():
        req = f"  [needs {', '.join(layer.requires)}]" if layer.requires else ""
        print(f"  {layer.name:<8} {layer.title}{req}")
        print(f"  {'':<8} {layer.description}")
    return EXIT_OK
