"""The run's Zarr store: opening it from a path or fsspec URL, and "finished" records.

A group counts as finished only when its attributes carry `complete: true` and the
fingerprint of the inputs that made it; that attribute is written last. A group that is
present but unfinished (a crash mid-write) is removed before it is written again, so a
reader never mistakes half-written data for a result, and a re-run reuses every group
whose fingerprint still matches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import numpy as np
import zarr
from zarr.errors import ContainsGroupError

from inrcore.geometry.sampling import known_distances

from .locations import is_url
from .locations import storage_options as storage_options_of_url
from .outages import patient


def open_store(url: str, mode: str = "a") -> zarr.Group:
    """Open (creating if needed) the root group of a Zarr v3 store at a path or fsspec URL (remote
    URLs with `tasks.locations.storage_options`)."""
    storage_options = None
    if url.startswith("file://"):
        storage_options = {"auto_mkdir": True}
    elif not is_url(url):
        Path(url).mkdir(parents=True, exist_ok=True)
    else:
        storage_options = storage_options_of_url()
    return patient(f"the Zarr store {url}", lambda: _open_group(url, mode, storage_options))


def _open_group(url: str, mode: str, storage_options) -> zarr.Group:
    try:
        return zarr.open_group(url, mode=mode, zarr_format=3, storage_options=storage_options)
    except ContainsGroupError:
        # Tasks starting together on a new store each find no root group and make one; all but the
        # first are refused, since it exists by then: open what they found made.
        return zarr.open_group(url, mode=mode, zarr_format=3, storage_options=storage_options)


def _store_name(root) -> str:
    return f"the Zarr store {root.store}"


def finished_attrs(root: zarr.Group, path: str, fingerprint: str) -> Optional[dict]:
    """The attributes of `path` if it is complete and made from `fingerprint`, else None (a store that
    cannot be reached is tried again for a while, `tasks.outages`)."""
    attrs = patient(_store_name(root), lambda: dict(root[path].attrs) if path in root else None)
    if attrs is None:
        return None
    if attrs.get("complete") is True and attrs.get("fingerprint") == fingerprint:
        return attrs
    return None


def fresh_group(root: zarr.Group, path: str) -> zarr.Group:
    """An empty group at `path`, removing whatever (finished or not) was there before."""
    if path in root:
        del root[path]
    return root.require_group(path)


def remove_group(root: zarr.Group, path: str) -> None:
    """Remove `path` if present (used to clean up after a failed write)."""
    if path in root:
        del root[path]


def mark_finished(group: zarr.Group, fingerprint: str, attrs: dict[str, Any]) -> None:
    """Write the group's attributes, with the completion record last."""
    group.attrs.update({**attrs, "fingerprint": fingerprint, "complete": False})
    group.attrs.update({"complete": True})


def volume_sdf_of(group: zarr.Group, n_surface: int) -> Optional[np.ndarray]:
    """The stored off-surface distances [V] of a samples group, or None when unknown.

    Point-cloud samples store NaN off the surface (`inrcore.geometry.sampling.sample_point_cloud`):
    they give None, so training uses no distances. See `inrcore.geometry.sampling.known_distances`.
    """
    return known_distances(np.asarray(group["sdf"][n_surface:]))


def write_group(root, path: str, key: str, arrays: dict[str, np.ndarray], attrs: dict) -> None:
    """A fresh group of arrays, marked finished last; removed again if anything fails. The whole write is
    tried again while the store cannot be reached (`tasks.outages`); a group left by a write that died
    with the store unreachable has no finished mark, so no reader takes it."""
    patient(_store_name(root), lambda: _write_group(root, path, key, arrays, attrs))


def _write_group(root, path: str, key: str, arrays: dict[str, np.ndarray], attrs: dict) -> None:
    try:
        group = fresh_group(root, path)
        for name, data in arrays.items():
            group.create_array(name, shape=data.shape, dtype=data.dtype)[...] = data
        mark_finished(group, key, attrs)
    except BaseException as exc:
        try:
            remove_group(root, path)
        except Exception:  # noqa: BLE001 - e.g. the store is unreachable: the unmarked group is never read
            pass
        raise exc


def read_arrays(root, path: str, names: tuple[str, ...]) -> list[np.ndarray]:
    return patient(_store_name(root), lambda: [np.asarray(root[path][name][...]) for name in names])
