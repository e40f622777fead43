"""`aiperf-workbench loadtest`: the serving load test, stored as a session.

It runs the ``serve`` workload (``workloads.serve_workload``) through the same front door as
`run` (``workbench.api.runs.run``: a supervised child process, the parity guard, the session
store) with one measured sweep and no warm-up sweep (the workload warms the engine up
itself), then prints TTFT / TPOT / ITL / E2E percentiles, throughput and goodput per arrival
rate and the knee of the throughput curve. (`serve` is the name the app's browser mode uses.)
"""

from __future__ import annotations

import argparse
from typing import Any

from sessions.records import RunStatus
from workbench.cli.arguments import param
from workbench.cli.main import stop_event


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "loadtest", help="serving load test: TTFT/TPOT/goodput vs request rate",
        description="A serving load test: an in-process engine with continuous batching "
        "and chunked prefill over the dense model, driven by seeded Poisson arrivals at each "
        "rate; reports TTFT, TPOT/ITL and end-to-end percentiles, output tokens/s, request "
        "throughput, goodput under the SLO and the knee of the throughput curve. Stored as a "
        "session (workload 'serve').")
    parser.add_argument("--preset", default="tiny", help="serve preset (tiny | small)")
    parser.add_argument("--rates", default=None, metavar="R1,R2,R3",
                        help="offered request rates per second (default: the preset's)")
    parser.add_argument("--requests", type=int, default=None,
                        help="requests per rate (bounded; default: the preset's)")
    parser.add_argument("--max-duration", type=float, default=None, metavar="S",
                        help="seconds per rate before the rest are dropped")
    parser.add_argument("--slo-ttft-ms", type=float, default=None)
    parser.add_argument("--slo-tpot-ms", type=float, default=None)
    parser.add_argument("--param", type=param, action="append", default=[], metavar="KEY=VALUE",
                        help="any other serve preset parameter; repeatable")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--label", default="")
    parser.add_argument("--json", action="store_true", help="print the load-test JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.set_defaults(handler=cmd_loadtest)


def _ms(dist: dict[str, Any] | None, key: str) -> str:
    value = (dist or {}).get(key)
    return "n/a" if value is None else f"{value:.1f}"


def _num(value: Any, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def format_loadtest(loadtest: dict[str, Any]) -> list[str]:
    lines = [f"{'rate/s':>7} {'done':>7} {'TTFT p50/p90/p99 ms':>22} "
             f"{'TPOT p50/p90/p99 ms':>22} {'ITL p99':>8} {'E2E p50/p99 ms':>17} "
             f"{'tok/s':>8} {'req/s':>6} {'goodput':>7}"]
    for point in loadtest.get("rates", []):
        ttft, tpot = point.get("ttft_ms"), point.get("tpot_ms")
        lines.append(
            f"{point['offered_rate_rps']:>7g} {point['completed']:>3}/{point['requests']:<3} "
            f"{_ms(ttft, 'p50') + '/' + _ms(ttft, 'p90') + '/' + _ms(ttft, 'p99'):>22} "
            f"{_ms(tpot, 'p50') + '/' + _ms(tpot, 'p90') + '/' + _ms(tpot, 'p99'):>22} "
            f"{_ms(point.get('itl_ms'), 'p99'):>8} "
            f"{_ms(point.get('e2e_ms'), 'p50') + '/' + _ms(point.get('e2e_ms'), 'p99'):>17} "
            f"{_num(point.get('output_tokens_per_s'), 1):>8} "
            f"{_num(point.get('request_throughput_rps')):>6} "
            f"{_num(point.get('goodput_rps')):>7}")
    knee = loadtest.get("knee") or {}
    slo = (loadtest.get("rates") or [{}])[0].get("slo") or {}
    lines.append(f"SLO: TTFT <= {slo.get('ttft_ms')} ms and TPOT <= {slo.get('tpot_ms')} ms; "
                 f"goodput = requests/s meeting it")
    lines.append("knee: " + (f"{knee['knee_rate_rps']:g} req/s" if knee.get("knee_rate_rps")
                             else "not reached") + f" — {knee.get('reason', 'n/a')}")
    return lines


def cmd_loadtest(args: argparse.Namespace) -> int:
    import json

    from workbench.api.runs import build_spec, run
    from workbench.api.sessions import open_store
    from workbench.cli.progress import CliProgress

    params: dict[str, Any] = dict(args.param)
    for key, value in (("rates", args.rates), ("num_requests", args.requests),
                       ("max_duration_s", args.max_duration), ("slo_ttft_ms", args.slo_ttft_ms),
                       ("slo_tpot_ms", args.slo_tpot_ms)):
        if value is not None:
            params[key] = value
    spec = build_spec(workload="serve", preset=args.preset, layers=["L0"], params=params,
                      repeat=1, warmup=0, timeout_s=args.timeout, seed=args.seed,
                      device=args.device, label=args.label or "loadtest")
    record = run(spec, open_store(args.home), on_event=CliProgress(quiet=args.quiet).on_event,
                 cancel=stop_event())
    loadtest = record.details.get("loadtest")
    if args.json:
        print(json.dumps({"session": record.id, "status": record.status, "error": record.error,
                          "parity": record.parity, "loadtest": loadtest}, indent=2))
    else:
        from workbench.export.escape import term_line

        print(f"session {record.id}: {record.status}"
              + (f" — {term_line(record.error)}" if record.error else ""))
        parity = record.parity
        if parity:
            print(f"parity (engine vs one-at-a-time greedy): "
                  f"{'ok' if parity.get('ok') else 'FAILED'}, max rel err "
                  f"{_num(parity.get('max_rel_err'), 8)}, top-1 {parity.get('top1_agreement')}")
        if loadtest:
            print("\n".join(format_loadtest(loadtest)))
    if record.status is not RunStatus.OK:
        return 1
    return 0 if record.parity.get("ok", False) else 1
