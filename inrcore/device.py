"""Where tensors live: CUDA when present, otherwise the CPU; never a hard-coded device.
"""

from __future__ import annotations

import torch


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" gives CUDA when present, otherwise the CPU; "cpu" and "cuda[:N]" are taken as is."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {name!r} was asked for but CUDA is not available here")
    return device
