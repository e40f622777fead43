"""The KernelTable's column names and categories, as constants: the parsers write them and the
analyzers read them by these names (``kt[Col.DUR_NS]``, ``Category.GEMM``), so a renamed
column is one edit and a typo an AttributeError instead of a silent empty match. Pure Python."""

from __future__ import annotations

from typing import Final


class Col:
    """Columns of the KernelTable (dtypes in ``kernel_table.COLUMNS``)."""

    NAME: Final = "name"
    NAME_ID: Final = "name_id"
    CATEGORY: Final = "category"
    KIND: Final = "kind"
    STREAM: Final = "stream"
    DEVICE: Final = "device"
    RANK: Final = "rank"
    START_NS: Final = "start_ns"
    DUR_NS: Final = "dur_ns"
    GRID: Final = "grid"
    BLOCK: Final = "block"
    REGISTERS: Final = "registers"
    SHARED_MEM: Final = "shared_mem"
    CORRELATION: Final = "correlation"
    OP_NAME: Final = "op_name"
    FLOPS: Final = "flops"
    DRAM_BYTES: Final = "dram_bytes"
    SOURCE: Final = "source"
    COST_SOURCE: Final = "cost_source"


class Category:
    """What a kernel does (``categories.categorize``)."""

    GEMM: Final = "gemm"
    ATTENTION: Final = "attention"
    MOE_DISPATCH: Final = "moe_dispatch"
    NORM: Final = "norm"
    ELEMENTWISE: Final = "elementwise"
    REDUCTION: Final = "reduction"
    MEMCPY: Final = "memcpy"
    MEMSET: Final = "memset"
    COMMUNICATION: Final = "communication"
    OTHER: Final = "other"


CATEGORIES: tuple[str, ...] = (
    Category.GEMM, Category.ATTENTION, Category.MOE_DISPATCH, Category.NORM,
    Category.ELEMENTWISE, Category.REDUCTION, Category.MEMCPY, Category.MEMSET,
    Category.COMMUNICATION, Category.OTHER,
)


class Kind:
    """The ``kind`` column: a kernel or a copy / fill the device did."""

    KERNEL: Final = "kernel"
    MEMCPY: Final = "memcpy"
    MEMSET: Final = "memset"
