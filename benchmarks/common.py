"""What every benchmark script records: the machine and the command, written as one JSON file."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path


def machine() -> dict:
    import torch

    device = "cpu"
    if torch.cuda.is_available():
        device = f"cuda: {torch.cuda.get_device_name(0)}"
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__, "device": device}


def write_result(path: str, name: str, argv, result: dict, quiet: bool = False) -> dict:
    """Write {"benchmark", "command", "machine", **result} to `path` and print it (unless quiet)."""
    report = {"benchmark": name, "command": "python " + " ".join([sys.argv[0]] + list(argv or sys.argv[1:])),
              "machine": machine(), **result}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=2) + "\n")
    if not quiet:
        print(json.dumps(report, indent=2))
    return report
