"""Host API calls by role — kernel launch, host-blocking synchronization — for every
accelerator runtime a trace may hold: CUDA runtime and driver, ROCm/HIP, MTIA, Intel XPU.

The one table every analysis asks (temporal, advice, the HTA comparison), so a ROCm trace's
hipLaunchKernel counts as a launch wherever launches are counted. Names are matched exactly
after dropping CUDA's per-thread / versioned suffixes (``_v2``, ``_ptsz``, ``_ptds``). A
synchronous copy (cudaMemcpy, hipMemcpy, hipMemcpyWithStream) is a synchronization.
"""

from __future__ import annotations

_MAX_NAME = 64  # every name in the tables is shorter: longer names are nobody's API call

LAUNCH_CALLS = frozenset({
    # CUDA runtime / driver
    "cudaLaunchKernel", "cudaLaunchKernelExC", "cudaLaunchCooperativeKernel",
    "cudaLaunchCooperativeKernelMultiDevice", "cuLaunchKernel", "cuLaunchKernelEx",
    "cuLaunchCooperativeKernel", "cuLaunchCooperativeKernelMultiDevice", "cudaGraphLaunch",
    "cuGraphLaunch",
    # ROCm / HIP
    "hipLaunchKernel", "hipLaunchKernelExC", "hipExtLaunchKernel", "hipModuleLaunchKernel",
    "hipExtModuleLaunchKernel", "hipHccModuleLaunchKernel", "hipLaunchCooperativeKernel",
    "hipModuleLaunchCooperativeKernel", "hipLaunchCooperativeKernelMultiDevice",
    "hipExtLaunchMultiKernelMultiDevice", "hipGraphLaunch",
    # MTIA (the name HTA counts as MTIA's launch)
    "runFunction - job_prep_and_submit_for_execution",
    # Intel XPU (Unified Runtime / Level Zero / PI)
    "urEnqueueKernelLaunch", "urEnqueueKernelLaunchExp", "zeCommandListAppendLaunchKernel",
    "piEnqueueKernelLaunch",
})

# Calls that block the host until the device (or a stream, or an event) catches up.
SYNC_CALLS = frozenset({
    "cudaDeviceSynchronize", "cudaStreamSynchronize", "cudaEventSynchronize",
    "cudaThreadSynchronize", "cuCtxSynchronize", "cuStreamSynchronize", "cuEventSynchronize",
    "cudaMemcpy", "cudaMemcpy2D", "cudaMemcpy3D", "cudaMemcpyToSymbol", "cudaMemcpyFromSymbol",
    "hipDeviceSynchronize", "hipStreamSynchronize", "hipEventSynchronize", "hipCtxSynchronize",
    "hipMemcpy", "hipMemcpy2D", "hipMemcpy3D", "hipMemcpyWithStream", "hipMemcpyHtoD",
    "hipMemcpyDtoH", "hipMemcpyDtoD", "hipMemcpyToSymbol", "hipMemcpyFromSymbol",
    # MTIA: "synchronize" is left out: it repeats the correlation id of the
    # synchronizeStream call it serves, so counting both would count each wait twice.
    "synchronizeStream", "synchronizeDevice",
    "urQueueFinish", "urEventWait", "zeCommandQueueSynchronize", "zeEventHostSynchronize",
})


def _base(name: str) -> str:
    """The name without its ``_v2`` / ``_ptsz`` / ``_ptds`` suffixes (at most three: a loop,
    not a regex, so a hostile 1 MB name costs one pass)."""
    if len(name) > _MAX_NAME:
        return ""
    for _ in range(3):
        if name.endswith(("_ptsz", "_ptds")):
            name = name[:-5]
            continue
        cut = name.rfind("_v")
        if cut > 0 and name[cut + 2:].isdigit():
            name = name[:cut]
            continue
        break
    return name


def is_launch(name: str) -> bool:
    return _base(name) in LAUNCH_CALLS


def is_sync(name: str) -> bool:
    return _base(name) in SYNC_CALLS
