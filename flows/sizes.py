"""Sizes refused before any work starts: a grid, a sample set, a ray set or a lattice that cannot fit.

Validation by type catches a negative count; it cannot know that `grid: {resolution: 100000}` asks
for 10^15 grid values. Here each collection flow's settings are turned into the largest arrays its
stages hold at once (`needs`), and `check_sizes` refuses, naming the setting and the figure, any
that exceeds the memory a run may use: `INRFLOW_MEMORY_GB` where set (a cluster's workers, say), else
this machine's physical memory. The figures are lower bounds (the arrays themselves; the libraries'
working copies come on top), so a refused size would certainly not have fitted.
"""

from __future__ import annotations

import os
from typing import Optional

from inrcore.errors import ConfigError


GB = 10**9
FLOAT = 4  # bytes of a float32
MEMORY_ENV = "INRFLOW_MEMORY_GB"


def memory_limit() -> int:
    """Bytes a run may hold at once: INRFLOW_MEMORY_GB (a positive number of 10^9 bytes) when set, else
    this machine's physical memory. ConfigError naming the variable when it is not a positive number."""
    value = os.environ.get(MEMORY_ENV)
    if value is not None:
        try:
            gigabytes = float(value)
        except ValueError:
            gigabytes = float("nan")
        if not gigabytes > 0 or gigabytes == float("inf"):
            raise ConfigError(f"{MEMORY_ENV} must be a positive number of gigabytes, got {value!r}")
        return int(gigabytes * GB)
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def lattice(points_per_axis: int) -> int:
    """Bytes of a float32 lattice of points_per_axis^3 values."""
    return points_per_axis ** 3 * FLOAT


def needs(section: str, config, train_shapes: int = 1) -> list[tuple[str, int]]:
    """(setting, bytes) of the largest arrays one shape's stages hold at once under `config`, the
    settings of manifest section `section`: "config" (the SDF flow, `CollectionConfig`), "nerf"
    (`NerfPipelineConfig`) or "shapespace" (`ShapeSpaceConfig`, whose training holds the samples of
    all `train_shapes` at once)."""
    if section == "config":
        s = config.sampling
        out = [(f"grid.resolution = {config.grid.resolution}", lattice(config.grid.resolution)),
               ("sampling.n_surface + n_near + n_uniform",
                (6 * s.n_surface + 4 * (s.n_near + s.n_uniform)) * FLOAT),
               (f"metrics.n_points = {config.metrics.n_points}", 2 * 3 * config.metrics.n_points * 2 * FLOAT)]
        if config.queries.range_mesh:
            out.append((f"queries.range.resolution = {config.queries.range.resolution}",
                        lattice(config.queries.range.resolution)))
        if config.skeleton.enabled:
            out.append(("skeleton.n_input x skeleton.candidates.max_candidates (coverage matrix)",
                        config.skeleton.n_input * config.skeleton.candidates.max_candidates))
        return out
    if section == "nerf":
        scene, rays = config.scene, config.rays
        side = max(scene.size // rays.downscale, 1)
        return [(f"scene.size = {scene.size}, scene.n_train + n_test = {scene.n_train + scene.n_test} (images)",
                 (scene.n_train + scene.n_test) * scene.size ** 2 * 4),
                (f"scene.n_train = {scene.n_train} views of {side}² rays",
                 scene.n_train * side ** 2 * 9 * FLOAT)]
    if section == "shapespace":
        s, mesh = config.sampling, config.mesh
        per_shape = (4 * s.n_samples + 6 * s.n_surface + 4 * s.n_occupancy) * FLOAT
        points = mesh.start * 2 ** mesh.levels + 1
        return [(f"sampling (n_samples + n_surface + n_occupancy) x {train_shapes} training shapes",
                 per_shape * max(train_shapes, 1)),
                (f"mesh.start x 2^mesh.levels = {points - 1} cells per axis", lattice(points)),
                (f"scan.resolution = {config.scan.resolution}", config.scan.resolution ** 2 * 3 * 8 * 4),
                (f"metrics.n_points = {config.metrics.n_points}", 2 * 3 * config.metrics.n_points * 2 * FLOAT)]
    raise ValueError(f"unknown manifest section {section!r}")


def check_sizes(section: str, config, source: str, train_shapes: int = 1, limit: Optional[int] = None) -> None:
    """ConfigError, naming `source`, each setting whose arrays need more than `limit` bytes (default
    `memory_limit()`) and the figure it would need; nothing when everything fits."""
    limit = memory_limit() if limit is None else limit
    over = [(what, size) for what, size in needs(section, config, train_shapes) if size > limit]
    if over:
        listed = "; ".join(f"{what} needs {_shown(size)}" for what, size in over)
        raise ConfigError(f"{source}: too large for the memory a run may use ({_shown(limit)}; set {MEMORY_ENV} "
                          f"to change it): {listed}. Nothing was started.")


def _shown(size: int) -> str:
    for unit, scale in (("EB", 10**18), ("PB", 10**15), ("TB", 10**12), ("GB", GB), ("MB", 10**6), ("kB", 10**3)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


def check_manifest_sizes(manifest, section: str, overrides: Optional[dict] = None, limit: Optional[int] = None) -> None:
    """`check_sizes` of a manifest's `section` settings with `overrides` (a --set style dict) applied,
    counting its "train" shapes, errors naming the manifest."""
    from inrcore.settings import config_replace

    settings = getattr(manifest, section)
    if overrides:
        settings = config_replace(settings, overrides, "overrides")
    check_sizes(section, settings, manifest.source or manifest.name, train_shapes=len(manifest.split("train")),
                limit=limit)
