"""The core commands: run, sessions, show, report, analyze, workloads. Each parses its
arguments into a ``workbench.api`` call and prints; bad input raises WorkbenchError (exit 2)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from workbench.cli.main import stop_event
from workbench.cli.output import to_stdout, write_output
from workbench.export.escape import term_line, term_text

EXIT_OK = 0


def cmd_run(args: argparse.Namespace) -> int:
    from workbench.api import runs
    from workbench.api.analysis import analyze_session
    from workbench.api.export import session_json, session_markdown
    from workbench.api.sessions import open_store
    from workbench.cli.progress import CliProgress
    from workloads.errors import StorageError

    params: dict[str, Any] = dict(args.param)
    for key in ("batch", "prompt_len", "new_tokens", "dtype", "mode"):
        value = getattr(args, key)
        if value is not None:
            params[key] = value
    spec = runs.build_spec(
        workload=args.workload, preset=args.preset, layers=args.layers, profiler=args.profiler,
        params=params, repeat=args.repeat, warmup=args.warmup, timeout_s=args.timeout,
        device=args.device, seed=args.seed, label=args.label,
        profiler_options=dict(args.profiler_option), telemetry=not args.no_telemetry,
        target=args.target, checkpoint=args.checkpoint, nproc_per_node=args.nproc_per_node,
        nnodes=args.nnodes, rdzv_endpoint=args.rdzv_endpoint)
    for name, why in spec.skipped_layers.items():  # a range never drops a layer without a word
        print(f"layer {name} skipped: {why}", file=sys.stderr)
    store = open_store(args.home)
    progress = CliProgress(quiet=args.quiet)
    started: list[str] = []

    def on_event(event: dict[str, Any]) -> None:
        if event.get("event") == "session":
            started.append(str(event.get("run_id")))
        progress.on_event(event)

    try:
        record = runs.run(spec, store, on_event=on_event, cancel=stop_event())
    except StorageError as exc:  # a full or read-only home: exit 2, or 1 once the run began
        if not started:
            raise
        print(f"aiperf-workbench: error: session {started[0]}: {term_line(exc.one_line())}",
              file=sys.stderr)
        return runs.EXIT_FAILED
    print_run_summary(record)
    if args.export or args.json:
        analysis = analyze_session(store, record)
        if args.export:
            write_output(args.export, session_markdown(record, analysis, args.export))
            print(f"report written to {args.export}", file=sys.stderr)
        if args.json:
            write_output(args.json, session_json(record, analysis))
    return runs.exit_code(record)


def print_run_summary(record: Any) -> None:
    from workbench.export.fmt import fmt_bytes, fmt_num
    from workloads.spec import replays_kernels

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
            print(f"  (timed under {record.profiler}, which serializes and replays kernels: "
                  "not a performance figure; use --profiler timer for speed)")
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
    if router:  # MoE workloads: router health against its targets
        from workloads.router_health import summary_lines

        print("\n".join("  " + line for line in summary_lines(router)))


def cmd_sessions(args: argparse.Namespace) -> int:
    from workbench.api.sessions import delete_session, list_sessions, open_store
    from workloads.errors import WorkbenchError

    store = open_store(args.home)
    if args.sessions_command == "delete":
        print(f"deleted {delete_session(store, args.id)}")
        return EXIT_OK
    if args.sessions_command not in (None, "list"):
        raise WorkbenchError(f"unknown action {args.sessions_command!r}", "use list or delete")
    rows = list_sessions(store, workload=getattr(args, "workload", None),
                         status=getattr(args, "status", None),
                         limit=getattr(args, "limit", 50),
                         sort=getattr(args, "sort", "created_at"),
                         descending=not getattr(args, "ascending", False))
    if not rows:
        print(f"no sessions in {store.home}")
        return EXIT_OK
    from workbench.export.fmt import fmt_num

    print(f"{'id':<23} {'status':<9} {'workload':<9} {'preset':<13} {'layers':<14} "
          f"{'profiler':<8} {'result':>14}")
    for r in rows:
        result = f"{fmt_num(r.headline, 4)} {r.headline_unit}".strip()
        print(term_line(f"{r.id:<23} {r.status:<9} {r.workload or r.kind:<9} "
                        f"{r.preset:<13} {r.layers:<14} {r.profiler:<8} {result:>14}"))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    from workbench.api.sessions import get_session, open_store
    from workbench.export.json_export import dumps

    sys.stdout.write(dumps(get_session(open_store(args.home), args.id).to_dict()))
    return EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    from workbench.api.analysis import analyze_session
    from workbench.api.export import session_csv, session_json, session_markdown
    from workbench.api.sessions import get_session, open_store

    store = open_store(args.home)
    record = get_session(store, args.id)
    analysis = analyze_session(store, record)
    if args.json:
        write_output(args.json, session_json(record, analysis))
    if getattr(args, "csv", None):
        write_output(args.csv, session_csv(analysis))
    if args.export:
        write_output(args.export, session_markdown(record, analysis, args.export))
        print(f"report written to {args.export}", file=sys.stderr)
    elif not args.json and not getattr(args, "csv", None):
        sys.stdout.write(term_text(session_markdown(record, analysis)))
    return EXIT_OK


def cmd_analyze(args: argparse.Namespace) -> int:
    from workbench.api.analysis import analyze_artifacts, hta_comparison

    no_limits = getattr(args, "no_limits", False)
    parsed, analysis = analyze_artifacts(
        list(args.paths), top=args.top, home=args.home,
        max_bytes=None if no_limits else getattr(args, "max_bytes", -1),
        max_events=None if no_limits else getattr(args, "max_events", -1))
    # imported after the parse: the exporters load pandas, which a large Kineto trace's parse
    # imports in this process while its forked worker parses (profilers/parsers/_trace_split)
    from workbench.api.export import artifacts_json, artifacts_markdown

    paths = [str(p) for p in args.paths]
    hta = hta_comparison(list(args.paths), parsed, analysis) if getattr(args, "hta", False) \
        else None
    if args.json:
        write_output(args.json, artifacts_json(analysis, hta))
    text = artifacts_markdown(paths, analysis, args.export if args.export and
                              not to_stdout(args.export) else None, hta)
    if args.export:
        write_output(args.export, text)
    if not to_stdout(args.json):
        sys.stdout.write(term_text(text))
    if args.save:
        from workbench.api.sessions import open_store, save_analysis

        record = save_analysis(open_store(args.home), list(args.paths), parsed)
        print(f"saved as session {record.id}", file=sys.stderr)
    return EXIT_OK


def cmd_workloads(args: argparse.Namespace) -> int:
    from workloads.catalog import LAYERS, list_workloads

    for info in list_workloads():
        print(f"{info.name:<10} {info.title}")
        print(f"{'':<10} {info.description}")
        print(f"{'':<10} presets: {', '.join(info.presets)} (default {info.default_preset})")
        if info.kind == "model":  # the layers a range like L0-L6 takes for this workload
            layers = [n for n, li in LAYERS.items() if not li.applies_to
                      or info.name in li.applies_to]
            print(f"{'':<10} layers: {', '.join(layers)}")
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
        only = f"  [{', '.join(layer.applies_to)}]" if layer.applies_to else ""
        print(f"  {layer.name:<8} {layer.title}{req}{only}")
        print(f"  {'':<8} {layer.description}")
    return EXIT_OK
