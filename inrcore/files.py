"""Writing files so that readers never see half of one, and reading JSON records back."""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Optional


def write_atomic(path, write: Callable[[str], object]) -> Path:
    """Call write(temporary path) in `path`'s folder (created if needed), then rename it onto `path`.

    The temporary name keeps `path`'s suffix, so writers that pick a format by extension work;
    the file gets the usual mode of a new file, and nothing is left behind when `write` fails.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        make_readable(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


# write_atomic's temporary names: "." + the file's name + "." + mkstemp's 8 random characters + ".tmp" + suffix
_PARTIAL = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp(\.[^./]+)?$")


def remove_stale_partials(folder, older_than: float = 600.0) -> list[Path]:
    """Remove the temporary files `write_atomic` left under `folder` when its process was killed before
    the rename, those last changed more than `older_than` seconds ago (a younger one may be another
    run's write in progress). Folders named *.zarr are not entered (a store has no such files and may
    hold millions of chunks). Best effort: a file that cannot be removed is left. Returns the paths removed."""
    removed, now = [], time.time()
    for root, folders, files in os.walk(folder):
        folders[:] = [f for f in folders if not f.endswith(".zarr")]
        for name in files:
            path = Path(root) / name
            if _PARTIAL.match(name):
                with contextlib.suppress(OSError):  # gone meanwhile, or not ours to remove: left alone
                    if now - path.stat().st_mtime > older_than:
                        path.unlink()
                        removed.append(path)
    return removed


def make_readable(path) -> None:
    """Give a file made by mkstemp (mode 0600) the usual mode of a new file: 0666 less the umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def write_text_atomic(path, text: str) -> Path:
    """Write a text file via a temporary name in the same folder and a rename."""
    return write_atomic(path, lambda tmp: Path(tmp).write_text(text))


def write_json_atomic(path, data: Any, sort_keys: bool = True) -> Path:
    """`write_text_atomic` of JSON indented by 2 (keys sorted unless `sort_keys` is False)."""
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=sort_keys) + "\n")


def read_json(path) -> Optional[Any]:
    """JSON content of `path`, or None when it does not exist or is not valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def write_safetensors(path, tensors: dict, header: dict[str, str]) -> Path:
    """Write tensors (moved to the CPU, made contiguous) and string `header` entries to a .safetensors
    file atomically."""
    from safetensors.torch import save_file

    plain = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    return write_atomic(path, lambda tmp: save_file(plain, tmp, metadata=header))


def read_safetensors(path, what: str) -> tuple[dict, dict[str, str]]:
    """(tensors on the CPU, header) of a .safetensors file; ShapeError naming the file (as `what`, e.g.
    "weights file") when it is missing or unreadable. Nothing is unpickled: the format holds raw tensors
    and strings only."""
    from safetensors import SafetensorError, safe_open

    from inrcore.errors import ShapeError

    path = Path(path)
    if not path.is_file():
        raise ShapeError(path, f"{what} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise ShapeError(path, f"not a readable safetensors file: {exc}") from exc
