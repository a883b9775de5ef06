"""The CPU a model runs (or was measured) on, and whether its int8 kernels can saturate.

onnxruntime's u8 x s8 GEMM (MLAS) on x86-64 without VNNI (its AVX2 and
AVX-512 core kernels) multiplies with ``vpmaddubsw``, which adds each pair of
adjacent u8*s8 products into a saturating int16; VNNI (``vpdpbusd``), AMX
and ARM's dot-product and widening kernels accumulate in int32 and never
saturate. A model whose weights keep that pair sum within int16 gives the
same numbers on every CPU; one that does not loses quality on the former.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from pathlib import Path

# The flags that decide which integer GEMM kernel onnxruntime picks.
INT8_FLAGS = ("avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx_vnni_int8", "amx_int8")
# Any of these replaces the saturating u8 x s8 kernel with one accumulating in int32.
INT32_DOT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
X86_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})
CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class CpuInfo:
    """A CPU as the int8 kernels see it: its architecture and, where known, its relevant flags."""

    machine: str
    flags: tuple[str, ...] | None  # None: the OS does not say (only Linux's /proc/cpuinfo is read)

    @property
    def is_x86(self) -> bool:
        return self.machine.lower() in X86_MACHINES

    @property
    def u8s8_saturates(self) -> bool | None:
        """Whether onnxruntime's u8 x s8 GEMM sums product pairs in int16 here (None: cannot tell)."""
        if not self.is_x86:
            return False
        if self.flags is None:
            return None
        return not INT32_DOT_FLAGS & set(self.flags)


def this_cpu(cpuinfo: Path = CPUINFO) -> CpuInfo:
    """The machine this process runs on, with the ``INT8_FLAGS`` it has."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return CpuInfo(platform.machine(), None)
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in {"flags", "Features"}:
            present = set(value.split())
            return CpuInfo(platform.machine(), tuple(f for f in INT8_FLAGS if f in present))
    return CpuInfo(platform.machine(), None)
