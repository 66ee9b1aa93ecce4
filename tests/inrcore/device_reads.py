"""Which operations of a training loop would make the host wait for the device, found on the CPU.

A CUDA step waits for the device when a value is read back (`float(t)`, `t.item()`, `bool(t)`: aten's
`_local_scalar_dense`) or when an operation's output size depends on data (a boolean mask index,
`nonzero`, `masked_select`, `unique`...). `DeviceReads` records such operations while active, each with
the innermost frame of inrflow's own code that asked for it ("inrcore/sdf/loop.py:history_entry"), so a
test on 2 CPU cores can say where a step would synchronise on a GPU. Reads inside `torch.optim` are left
out: the optimisers' step counters live on the host (not captured or fused), so reading them waits for
nothing.
"""

from __future__ import annotations

import collections
import os
import traceback

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import inrcore


PACKAGE = os.path.dirname(inrcore.__file__) + os.sep  # inrflow's library code


DATA_DEPENDENT = {"aten.nonzero.default", "aten.masked_select.default", "aten._unique2.default",
                  "aten.unique_dim.default", "aten.unique_consecutive.default", "aten.repeat_interleave.Tensor"}


class DeviceReads(TorchDispatchMode):
    """Counts of {"file.py:function": n} of the operations that wait for the device (module docstring)."""

    def __init__(self):
        super().__init__()
        self.sites: collections.Counter = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = str(func)
        bool_index = name.startswith("aten.index.Tensor") and any(
            isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in (args[1] or []))
        if name == "aten._local_scalar_dense.default" or name in DATA_DEPENDENT or bool_index:
            frames = traceback.extract_stack()
            if not any("torch/optim" in f.filename for f in frames):
                ours = [f for f in frames if f.filename.startswith(PACKAGE) and not f.name.startswith("<")]
                where = ours[-1] if ours else frames[-2]
                self.sites[f"{where.filename.removeprefix(PACKAGE)}:{where.name}"] += 1
        return func(*args, **(kwargs or {}))
