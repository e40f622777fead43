"""Where the GPU time goes: totals by category, kernel, parent CPU op and stream.

Every function groups on integer codes (categorical codes or ``pd.factorize``) and sums the
integer ``dur_ns`` column, so totals are exact: the per-group ``total_ns`` add up to
``kernel_table.dur_ns.sum()``. ``share`` is the group's fraction of that total (None when the
table holds no time). Rows come sorted by total time, largest first.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analyzers.distinct import str_mask
from profilers.parsers.schema import Col


def _durations(kt: pd.DataFrame) -> np.ndarray:
    """dur_ns as int64 (a missing duration adds nothing to any total)."""
    return kt[Col.DUR_NS].to_numpy(dtype="int64", na_value=0)


def _shares(total_ns: pd.Series, grand_total: int) -> pd.Series:
    if grand_total <= 0:
        return pd.Series([None] * len(total_ns), index=total_ns.index, dtype="object")
    return total_ns.astype("float64") / float(grand_total)


def _sum_by_codes(codes: np.ndarray, dur: np.ndarray) -> pd.DataFrame:
    """count and exact total_ns per code (code -1 = missing is kept as its own group)."""
    frame = pd.DataFrame({"code": codes, "dur": dur})
    grouped = frame.groupby("code", sort=False)["dur"]
    return pd.DataFrame({"count": grouped.size().astype("int64"),
                         "total_ns": grouped.sum().astype("int64")})


def category_breakdown(kt: pd.DataFrame) -> pd.DataFrame:
    """category, count, total_ns, share."""
    cat = kt[Col.CATEGORY].astype("category")
    agg = _sum_by_codes(np.asarray(cat.cat.codes), _durations(kt))
    labels = np.asarray(cat.cat.categories, dtype=object)
    agg["category"] = [labels[c] if c >= 0 else None for c in agg.index]
    agg = agg.sort_values("total_ns", ascending=False, kind="stable").reset_index(drop=True)
    agg["share"] = _shares(agg["total_ns"], int(agg["total_ns"].sum()))
    return agg[["category", "count", "total_ns", "share"]]


def kernel_breakdown(kt: pd.DataFrame, top: int | None = None) -> pd.DataFrame:
    """name, category, count, total_ns, mean_ns, p50_ns, p99_ns, share (top ``top`` by time).

    ``share`` is relative to the whole table, also when ``top`` cuts the list.
    """
    names = kt[Col.NAME].astype("category")
    codes = np.asarray(names.cat.codes)
    dur = _durations(kt)
    frame = pd.DataFrame({"code": codes, "dur": dur,
                          "category": kt[Col.CATEGORY].astype("category").cat.codes.to_numpy()})
    grouped = frame.groupby("code", sort=False)
    out = pd.DataFrame({
        "count": grouped.size().astype("int64"),
        "total_ns": grouped["dur"].sum().astype("int64"),
        "cat_code": grouped["category"].first(),
    })
    # Quantiles of the real durations only (missing ones would drag them to 0).
    valid = kt[Col.DUR_NS].notna().to_numpy()
    quant = frame[valid].groupby("code", sort=False)["dur"].quantile([0.5, 0.99]).unstack()
    valid_counts = frame[valid].groupby("code", sort=False).size()
    out["mean_ns"] = out["total_ns"] / valid_counts.reindex(out.index)
    out["p50_ns"] = quant.reindex(out.index)[0.5] if len(quant) else np.nan
    out["p99_ns"] = quant.reindex(out.index)[0.99] if len(quant) else np.nan
    grand = int(dur.sum())
    out = out.sort_values("total_ns", ascending=False, kind="stable")
    if top is not None:
        out = out.head(top)
    labels = np.asarray(names.cat.categories, dtype=object)
    cat_labels = np.asarray(kt[Col.CATEGORY].astype("category").cat.categories, dtype=object)
    out.insert(0, "name", [labels[c] if c >= 0 else None for c in out.index])
    out.insert(1, "category", [cat_labels[c] if c >= 0 else None for c in out["cat_code"]])
    out["share"] = _shares(out["total_ns"], grand)
    out = out.reset_index(drop=True)
    for col in ("mean_ns", "p50_ns", "p99_ns"):
        out[col] = out[col].astype("float64")
    return out[["name", "category", "count", "total_ns", "mean_ns", "p50_ns", "p99_ns", "share"]]


def op_breakdown(kt: pd.DataFrame) -> pd.DataFrame:
    """op_name (parent CPU op; None = kernels with no known parent), count, kernels (distinct
    kernel names), total_ns, share."""
    codes, uniques = pd.factorize(kt[Col.OP_NAME], use_na_sentinel=True)
    dur = _durations(kt)
    frame = pd.DataFrame({"code": codes, "dur": dur,
                          "name": np.asarray(kt[Col.NAME].astype("category").cat.codes)})
    grouped = frame.groupby("code", sort=False)
    out = pd.DataFrame({
        "count": grouped.size().astype("int64"),
        "kernels": grouped["name"].nunique().astype("int64"),
        "total_ns": grouped["dur"].sum().astype("int64"),
    })
    labels = np.asarray(uniques, dtype=object)
    out.insert(0, "op_name", pd.Series([labels[c] if c >= 0 else None for c in out.index],
                                       index=out.index, dtype="object"))
    out = out.sort_values("total_ns", ascending=False, kind="stable").reset_index(drop=True)
    out["share"] = _shares(out["total_ns"], int(dur.sum()))
    return out[["op_name", "count", "kernels", "total_ns", "share"]]


UNATTRIBUTED_SHARE = 0.5  # above this share of GPU time without a parent op, say why


def unattributed_reason(kt: pd.DataFrame) -> str | None:
    """Why most GPU time has no parent CPU op, or None when attribution holds.

    Kernels replayed from a CUDA graph share the correlation id of the one cudaGraphLaunch
    that replayed them and were launched by no aten op; Triton kernels generated by
    torch.compile are launched by Inductor's wrapper, not by an aten op. Either way a table
    "GPU time by CPU op" would read "(no parent op) 100%"; the kernel view is the one to read.
    """
    if kt is None or not len(kt) or "op_name" not in kt:
        return None
    dur = _durations(kt)
    total = int(dur.sum())
    orphan = kt[Col.OP_NAME].isna().to_numpy()
    if total <= 0 or dur[orphan].sum() < UNATTRIBUTED_SHARE * total:
        return None
    corr = kt[Col.CORRELATION]
    replayed = orphan & corr.notna().to_numpy() & corr.duplicated(keep=False).to_numpy()
    compiled = orphan & str_mask(kt[Col.NAME], lambda name: name.startswith("triton_"))
    causes = []
    if replayed.any():
        causes.append(f"kernels replayed from CUDA graphs ({int(corr[replayed].nunique())} "
                      f"graph launches) make {dur[replayed].sum() / total:.0%} of it")
    if compiled.any():
        causes.append(f"Triton kernels generated by torch.compile "
                      f"{dur[compiled].sum() / total:.0%}")
    why = ("; ".join(causes) + (": neither is launched by an aten op" if len(causes) > 1
                                else ": no aten op launches them")
           if causes else "the trace links no CPU op to these kernels")
    share = dur[orphan].sum() / total
    return (f"CPU-op attribution is not available for this run: {share:.0%} of GPU time has no "
            f"parent aten op ({why}). Read the kernel view (Top kernels) instead.")


def stream_breakdown(kt: pd.DataFrame) -> pd.DataFrame:
    """device, stream, count, total_ns, share (device/stream <NA> where unknown)."""
    dev = kt[Col.DEVICE].to_numpy(dtype="int64", na_value=-1)
    stream = kt[Col.STREAM].to_numpy(dtype="int64", na_value=-1)
    # One integer key per (device, stream) pair, missing ones (-1) included.
    span = int(stream.max()) + 2 if len(stream) else 1
    codes, uniques = pd.factorize((dev + 1) * span + (stream + 1))
    agg = _sum_by_codes(np.asarray(codes), _durations(kt))
    keys = np.asarray(uniques, dtype="int64")[agg.index.to_numpy()]
    devices, streams = keys // span - 1, keys % span - 1
    agg.insert(0, "device", pd.array(np.where(devices >= 0, devices, 0), dtype="Int64"))
    agg.insert(1, "stream", pd.array(np.where(streams >= 0, streams, 0), dtype="Int64"))
    agg.loc[devices < 0, "device"] = pd.NA
    agg.loc[streams < 0, "stream"] = pd.NA
    agg = agg.sort_values("total_ns", ascending=False, kind="stable").reset_index(drop=True)
    agg["share"] = _shares(agg["total_ns"], int(agg["total_ns"].sum()))
    return agg[["device", "stream", "count", "total_ns", "share"]]


def cpu_op_breakdown(ops: pd.DataFrame, top: int | None = 15) -> pd.DataFrame:
    """CPU ops from a torch-profiler trace by inclusive wall time: name, count, total_ns,
    mean_ns, flops (sum where the profiler counted them). Nested ops each count their own
    inclusive time, so shares are not additive; what matters on a CPU run is the ranking."""
    if ops is None or len(ops) == 0:
        return pd.DataFrame(columns=["name", "count", "total_ns", "mean_ns", "flops"])
    names = ops["name"].astype("category")
    frame = pd.DataFrame({"code": np.asarray(names.cat.codes),
                          "dur": ops["dur_ns"].to_numpy(dtype="int64", na_value=0),
                          "flops": ops["flops"].to_numpy(dtype="float64", na_value=np.nan)
                          if "flops" in ops else np.nan})
    grouped = frame.groupby("code", sort=False)
    out = pd.DataFrame({"count": grouped.size().astype("int64"),
                        "total_ns": grouped["dur"].sum().astype("int64"),
                        "flops": grouped["flops"].sum(min_count=1)})
    out["mean_ns"] = out["total_ns"] / out["count"]
    out = out.sort_values("total_ns", ascending=False, kind="stable")
    if top is not None:
        out = out.head(top)
    labels = np.asarray(names.cat.categories, dtype=object)
    out.insert(0, "name", [labels[c] if c >= 0 else None for c in out.index])
    return out.reset_index(drop=True)[["name", "count", "total_ns", "mean_ns", "flops"]]
