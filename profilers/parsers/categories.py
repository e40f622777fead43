"""Kernel name -> category. The one place these rules live.

Rules are ordered: the first match wins. They are tested on real kernel names from H100
traces (nvjet_*, cutlass*, sm90_xmma*, flash*, cudnn*sdpa*, triton_*, at::native elementwise,
vectorized_gather_kernel, nccl*). Categorize the unique names, not every row.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd

from profilers.parsers.schema import CATEGORIES

# (category, pattern) — searched case-insensitively in the kernel name. Every pattern is a set
# of literal alternatives (at most a bounded look-ahead): no ``.*`` between two words, whose
# backtracking made one 100 KB kernel name take seconds (quadratic in its length).
_RULES: list[tuple[str, re.Pattern[str]]] = [
    ("communication", re.compile(r"nccl|all_?reduce|all_?gather|reduce_?scatter|alltoall|all_to_all|cross_device|ncclDevKernel")),
    ("memcpy", re.compile(r"^memcpy|\bmemcpy|CUDA memcpy|copy_kernel_DtoD")),
    ("memset", re.compile(r"^memset|\bmemset|CUDA memset")),
    ("attention", re.compile(r"flash|fmha|sdpa|attention|attn|split_?kv|xformers|paged_?attention|flex_?attention|mha_")),
    ("moe_dispatch", re.compile(r"gather|scatter|index_?select|indexSelect|index_put|index_kernel|indexing_backward|moe_?align|permute_?tokens|topk|sort|radix|bitonic|histogram|bincount|nonzero|masked_?select|unique")),
    ("gemm", re.compile(r"nvjet|gemm|cutlass|xmma|cublas|sgemm|hgemm|wgmma|matmul|_mm_|splitKreduce|scaled_mm|grouped_mm|bmm|dot_kernel|gemv|triton_tem_fused_mm|mm_kernel")),
    # "norm" but not "normal" (random-number kernels: distribution_..._normal_and_transform)
    ("norm", re.compile(r"norm(?!al)|rms_?norm|layer_?norm|batch_?norm|group_?norm")),
    ("reduction", re.compile(r"reduce|reduction|sum_kernel|mean_kernel|max_kernel|min_kernel|argmax|cumsum|scan|softmax|logsumexp|triton_red_|triton_per_")),
    ("elementwise", re.compile(r"elementwise|distribution_|vectorized|unrolled|pointwise|triton_poi_|fill|copy|cat_|catArrayBatched|add_kernel|mul_kernel|activation|gelu|silu|relu|swiglu|rotary|rope|clamp|where|cast|convert|to_copy|transpose|arange|triu|tril|index_fill|embedding|neg_|exp_|pow_")),
]


def categorize(name: str, kind: str | None = None) -> str:
    """Category of one kernel (``kind`` "memcpy"/"memset" wins over the name)."""
    if kind in ("memcpy", "memset"):
        return kind
    low = name.lower()
    for category, pattern in _RULES:
        if pattern.search(low) or pattern.search(name):
            return category
    return "other"


def categorize_names(names: pd.Categorical, kinds: Sequence[str] | None = None) -> pd.Categorical:
    """Vectorized: categorize each unique name once, then map codes; memcpy/memset kinds win."""
    cats = [categorize(str(n)) for n in names.categories]
    lookup = np.array([CATEGORIES.index(c) for c in cats], dtype=np.int8)
    codes = np.asarray(names.codes)
    if len(lookup):
        result_codes = np.where(codes >= 0, lookup[np.clip(codes, 0, None)], -1)
    else:
        result_codes = np.full(len(codes), -1, dtype=np.int8)
    if kinds is not None and len(kinds):
        kind_arr = kinds if isinstance(kinds, pd.Categorical) else pd.Categorical(list(kinds))
        for kind in ("memcpy", "memset"):
            mask = np.asarray(kind_arr == kind)
            if mask.any():
                result_codes = np.where(mask, CATEGORIES.index(kind), result_codes)
    return pd.Categorical.from_codes(result_codes.astype(np.int8), categories=list(CATEGORIES))
