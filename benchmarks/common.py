"""What every benchmark script records: the machine and the command, written as one JSON file;
and meshes saved exactly, for measuring them again later."""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path


def _cpuinfo(field: str) -> str | None:
    """The value of the first `field` line of /proc/cpuinfo; None where there is none (or no such file)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(field):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or the platform's word for it)."""
    return _cpuinfo("model name") or platform.processor() or "unknown"


MATRIX_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_flags() -> list[str]:
    """Which of MATRIX_FLAGS /proc/cpuinfo lists: CPUs of one model name ("AMD EPYC") differ in them, and
    bfloat16 products are fast only with avx512_bf16 or amx_bf16."""
    present = set((_cpuinfo("flags") or "").split())
    return [flag for flag in MATRIX_FLAGS if flag in present]


def machine() -> dict:
    import torch

    device = "cpu"
    if torch.cuda.is_available():
        device = f"cuda: {torch.cuda.get_device_name(0)}"
    return {"cpus": os.cpu_count(), "cpu_flags": cpu_flags(), "platform": platform.platform(),
            "torch": torch.__version__, "device": device}


def write_result(path: str, name: str, argv, result: dict, quiet: bool = False) -> dict:
    """Write {"benchmark", "command", "machine", **result} to `path` and print it (unless quiet)."""
    report = {"benchmark": name, "command": "python " + " ".join([sys.argv[0]] + list(argv or sys.argv[1:])),
              "machine": machine(), **result}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=2) + "\n")
    if not quiet:
        print(json.dumps(report, indent=2))
    return report


def save_mesh(path: Path, mesh) -> None:
    """Write a mesh exactly: float64 vertices and int64 faces in an .npz, atomically."""
    import numpy as np

    from inrcore.files import write_atomic

    vertices, faces = np.asarray(mesh.vertices, dtype=np.float64), np.asarray(mesh.faces, dtype=np.int64)
    write_atomic(path, lambda tmp: np.savez_compressed(tmp, vertices=vertices, faces=faces))


def load_saved_mesh(path: Path):
    """The mesh `save_mesh` wrote, as a trimesh.Trimesh (not processed)."""
    import numpy as np
    import trimesh

    with np.load(path) as data:
        return trimesh.Trimesh(vertices=data["vertices"], faces=data["faces"], process=False, validate=False)


def metric_figures(metrics: dict) -> dict:
    """Metric figures as benchmark results keep them: plain floats to 5 significant figures (exact
    distances of good fits are ~1e-4, where 5 decimals would keep one or two digits)."""
    return {k: float(f"{float(v):.5g}") for k, v in metrics.items()}
