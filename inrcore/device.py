"""Where tensors live: CUDA when present, otherwise the CPU; never a hard-coded device.
"""

from __future__ import annotations

import os

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" gives CUDA when present, otherwise the CPU; "cpu" and "cuda[:N]" are taken as is."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for but CUDA is not available here")
    return device


def free_memory(device: torch.device) -> int:
    """Bytes that can still be allocated on `device`: the CUDA driver's free memory of that GPU, or for
    the CPU the memory the kernel reports available (`MemAvailable` of /proc/meminfo, else free pages)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def multiplies_bfloat16(device: torch.device) -> bool:
    """Whether `device` multiplies bfloat16 in hardware, so that bfloat16 forward passes outrun float32 ones: a
    CUDA GPU with native bfloat16 (Ampere on), or a CPU with AMX tiles or AVX-512 BF16. Elsewhere torch converts
    every product to float32 and back (on a 2-core AVX2 EPYC an Occupancy Network step took several times as
    long as in float32; BENCHMARKS.md)."""
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type != "cpu":
        return False
    # private in torch 2.13 (torch.cpu._is_*_supported); a torch without them is taken to lack the arithmetic
    checks = (getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported"))
    return any(bool(check()) for check in checks if check is not None)
