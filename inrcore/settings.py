"""Typed, frozen, JSON round-trippable configuration.

Every stage of the pipeline is configured by one of the dataclasses below. They are plain
data: `config_to_dict` gives JSON-ready dicts, `config_from_dict` validates a mapping (from
YAML, JSON or a Prefect parameter) and raises `ConfigError` naming the offending key.
`fingerprint` hashes any config (or dict of them) for the stores' "already done" records.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, TypeVar

from inrcore.errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class SamplingConfig:
    """How a mesh becomes training samples.

    The shape is scaled so that its bounding box's longest side spans [-extent, extent]
    and centred at the origin. Off-surface points are Gaussian perturbations of surface
    points with each standard deviation in `near_sigmas` (n_near split evenly) plus
    `n_uniform` points uniform in [-1, 1]^3.
    """

    n_surface: int = 50_000
    n_near: int = 50_000
    near_sigmas: tuple[float, ...] = (0.01, 0.1)
    n_uniform: int = 20_000
    extent: float = 0.9
    seed: int = 0


@dataclass(frozen=True)
class NetworkConfig:
    """The field's network: `layers` hidden layers of `width` units.

    kind "siren": sin(omega (W x + b)) layers, SIREN initialisation, fitted with the SIREN loss.
    kind "igr": Softplus(beta) MLP with the input re-injected at the middle layer and the
    geometric initialisation to a sphere of `radius`, fitted with the IGR loss.
    kind "relu-pe": the same with ReLU and a Fourier encoding of `frequencies` octaves.
    kind "idf": an implicit displacement field (Wang Yifan et al. 2022, `inrcore.fields.idf`): a base
    SIREN f of `layers` x `width` displaced along its normals by a SIREN d, fitted with the SIREN
    loss on the composed field after a base-only stage. Its settings (defaults from the authors'
    reconstruction experiment in github.com/yifita/idf):
      idf_omega_base: ω of every sine layer of the base (15).
      idf_omega_displacement: ω of every sine layer of the displacement network (60).
      idf_displacement_width, idf_displacement_layers: its size; None: the base's width / layers.
      idf_nu: width ν of the attenuation χ(f) = 1 / (1 + (f/ν)^4) (0.05).
      idf_max_displacement: bound of the displacement, max · tanh(.) (0.05).
      idf_base_fraction: training progress before which the base trains alone (0.2).
      idf_blend_end: progress by which loss and learning rates have moved from the base to the
        composed field; the base is frozen from then on (0.5).
      idf_detach_normal: use the base normal and χ as constants inside the composition when
        training, as the authors' code does (cheaper: no second derivatives of f in ∇f̂).
    """

    kind: str = "siren"
    width: int = 128
    layers: int = 3
    omega_first: float = 30.0
    omega_hidden: float = 30.0
    beta: float = 100.0
    frequencies: int = 6
    radius: float = 0.5
    idf_omega_base: float = 15.0
    idf_omega_displacement: float = 60.0
    idf_displacement_width: Optional[int] = None
    idf_displacement_layers: Optional[int] = None
    idf_nu: float = 0.05
    idf_max_displacement: float = 0.05
    idf_base_fraction: float = 0.2
    idf_blend_end: float = 0.5
    idf_detach_normal: bool = True


@dataclass(frozen=True)
class LossConfig:
    """Weights of the SIREN SDF loss (Sitzmann et al. 2020, their defaults).

    surface: |u| on surface points; normal: 1 - cos(grad u, n) on surface points;
    eikonal: (|grad u| - 1)^2 everywhere; offsurface: exp(-alpha |u|) on points off the
    surface: the fresh uniform points, and the stored off-surface samples whose true
    distance exceeds `offsurface_margin` (so the term never pulls against the surface).
    sdf: weight of a clamped L1 term |clamp(u) - clamp(d)| (DeepSDF's, clamp at
    `sdf_clamp`) on stored off-surface samples with true distance d, available when fitting
    meshes rather than bare point clouds; 0 gives the SIREN loss alone. Without it, short CPU
    fits leave interior shells where the field turns positive inside the body (measured in
    BENCHMARKS.md: bunny Chamfer-L1 0.0148 without, 0.0027 with).
    """

    surface: float = 3000.0
    normal: float = 100.0
    eikonal: float = 50.0
    offsurface: float = 100.0
    alpha: float = 100.0
    offsurface_margin: float = 0.03
    sdf: float = 1000.0
    sdf_clamp: float = 0.5
    igr_tau: float = 1.0
    igr_lambda: float = 0.1
    igr_neighbours: int = 50


@dataclass(frozen=True)
class IsoPointsConfig:
    """Iso-points as extra surface data while fitting (Wang Yifan et al. 2021, `inrcore.queries.isopoints`).

    When `enabled`, once training progress reaches `warmup` (a fraction of the run) and then
    every `refresh_every` steps, about `n_points` points are extracted on the current zero
    level set: the first time from the surface data points, later from the previous iso-points
    moved by uniform noise in [-jitter, jitter]^3; each time projected (`max_iterations` Newton
    steps clamped at `max_step`, kept when |f| <= `tolerance`), resampled uniformly
    (`resample_iterations` rounds over `neighbours` neighbours) and, when `upsample`, filled up
    edge-aware. A `batch_share` of each step's surface batch is then drawn from them instead of
    the data, as oriented surface points with normals from the field's gradient (`normals`
    "field") or from their own neighbourhoods (PCA of 8 neighbours turned to agree with the
    gradient, "estimated", as the authors' point-cloud experiment does). With `bilateral`, each
    data point's surface terms are weighted by its agreement with the nearest iso-point
    (`bilateral_weights_from_isopoints`: distance to its tangent plane, and normals within about
    `bilateral_angle` degrees; 0 beyond `bilateral_radius`), so outliers and badly oriented
    points pull less. Defaults from the authors' code (github.com/yifita/iso-points) where it
    has one (their point-cloud experiment: estimated normals, bilateral weights); warmup,
    refresh_every and batch_share are chosen for this project's short fits. BENCHMARKS.md
    ("Iso-points on sparse, noisy and outlier-ridden point clouds") measures the choices.
    """

    enabled: bool = False
    n_points: int = 5000
    warmup: float = 0.25
    refresh_every: int = 250
    batch_share: float = 0.5
    jitter: float = 0.05
    resample_iterations: int = 5
    neighbours: int = 16
    upsample: bool = True
    normals: str = "estimated"
    max_iterations: int = 10
    tolerance: float = 5e-5
    max_step: float = 0.1
    bilateral: bool = True
    bilateral_angle: float = 60.0
    bilateral_radius: float = 0.1


ISOPOINT_NORMALS = ("field", "estimated")


@dataclass(frozen=True)
class TrainConfig:
    """The fitting loop. `seconds`, when set, caps the wall time; `steps` always caps steps.

    shapes_per_batch > 1 trains that many shapes of a collection together in one process
    with stacked weights (`inrcore.sdf.batched.fit_sdf_batch`): each shape's fit is the one it
    would get alone (same initialisation, samples and optimiser steps, up to rounding), in
    less time per shape. `seconds` then caps the wall time of the whole batch.

    `isopoints` (off by default) adds iso-points of the current field to the surface data
    (`IsoPointsConfig`); such fits train shape by shape, never stacked.
    """

    steps: int = 2000
    seconds: Optional[float] = None
    batch_surface: int = 2048
    batch_offsurface: int = 2048
    batch_uniform: int = 2048
    lr: float = 2e-4
    lr_final: float = 2e-5
    seed: int = 0
    device: str = "auto"
    log_every: int = 50
    shapes_per_batch: int = 1
    network: NetworkConfig = field(default_factory=NetworkConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    isopoints: IsoPointsConfig = field(default_factory=IsoPointsConfig)


@dataclass(frozen=True)
class GridConfig:
    """A dense grid of `resolution`^3 points spanning [-bound, bound]^3, stored in `chunk`^3 blocks."""

    resolution: int = 128
    chunk: int = 64
    bound: float = 1.0
    batch_points: int = 65536


@dataclass(frozen=True)
class RangeMeshConfig:
    """Range-bound meshing (`inrcore.queries.rangemesh`): marching cubes only where range analysis of the
    field cannot certify its sign, equal to dense marching cubes on a lattice of `resolution`^3
    points spanning [-bound, bound]^3.

    leaf: cells per edge of the smallest boxes bounded (and of the blocks then sampled).
    mode: "affine" or "interval" arithmetic; max_symbols: noise symbols kept per affine form
    (null keeps all: tightest, slowest). batch_boxes: boxes bounded at once.
    tasks: in the collection flow, the surviving leaf blocks are sampled by this many tasks
    spread over the Dask cluster.
    fallback: bound `samples` random boxes per level first and mesh densely (every lattice
    point) when range analysis is predicted to cost more (`inrcore.queries.rangemesh.estimate_range_mesh`).
    """

    resolution: int = 256
    bound: float = 1.0
    leaf: int = 8
    mode: str = "affine"
    max_symbols: Optional[int] = 8
    batch_boxes: int = 4096
    batch_points: int = 65536
    tasks: int = 4
    fallback: bool = True
    samples: int = 256


@dataclass(frozen=True)
class QueriesConfig:
    """Query stages of the collection flow after a shape's field is fitted and meshed.

    isopoints: iso-points extracted per shape and stored in Zarr (0: no iso-point stage).
    range_mesh: also mesh each field by range analysis (`range`), into `meshes/<id>-range.ply`.
    """

    isopoints: int = 0
    range_mesh: bool = False
    range: RangeMeshConfig = field(default_factory=RangeMeshConfig)


@dataclass(frozen=True)
class NerfConfig:
    """A radiance field (`inrcore.nerf.models`) and its training (`inrcore.nerf.training`).

    model "nerf" (Mildenhall et al. 2020): `depth` x `width` ReLU MLP, the encoded position
    re-injected after layer `skip`, density from the position only, colour from a branch
    that also sees the encoded view direction; `n_coarse` stratified samples per ray and
    `n_fine` more drawn from the coarse weights for a second (fine) network.
    model "ngp" (Mueller et al. 2022): a multiresolution hash encoding (`hash_*`) with small
    MLPs of `ngp_width` units, sampled every `render_step` along each ray (None: the box's
    diagonal / 256) and only where an occupancy grid of `grid_resolution`^3 cells over the
    scene box, refreshed every `grid_every` steps, finds density.
    The scene lies in the cube [-bound, bound]^3; `background` is composited behind.

    Ablations (the NeRF paper's): `positional_encoding` False feeds raw coordinates;
    `view_dependent` False gives colour from the position alone.
    lr: None takes the model's own (5e-4 nerf, 1e-2 ngp), decayed exponentially to
    lr x `lr_final_fraction`. `steps` always caps training, `seconds` caps wall time.
    Every `eval_every` steps `eval_views` test views are rendered and measured; a
    checkpoint is written every `checkpoint_every` steps.
    """

    model: str = "ngp"
    steps: int = 5000
    seconds: Optional[float] = None
    batch_rays: int = 1024
    lr: Optional[float] = None
    lr_final_fraction: float = 0.1
    bound: float = 1.5
    background: tuple[float, ...] = (1.0, 1.0, 1.0)
    positional_encoding: bool = True
    view_dependent: bool = True
    position_frequencies: int = 10
    direction_frequencies: int = 4
    depth: int = 8
    width: int = 256
    skip: int = 4
    n_coarse: int = 64
    n_fine: int = 128
    hash_levels: int = 16
    hash_features: int = 2
    hash_log2_size: int = 17
    hash_base_resolution: int = 16
    hash_finest_resolution: int = 1024
    ngp_width: int = 64
    grid_resolution: int = 64
    grid_every: int = 16
    render_step: Optional[float] = None
    eval_every: int = 500
    eval_views: int = 2
    checkpoint_every: int = 500
    chunk_rays: int = 4096
    seed: int = 0
    device: str = "auto"


NERF_MODELS = ("nerf", "ngp")


@dataclass(frozen=True)
class MeshSceneConfig:
    """A synthetic NeRF scene rendered from a mesh (`inrcore.nerf.meshscenes`), Blender-style.

    The mesh is centred and scaled so that its bounding box's longest side spans
    [-extent, extent]. `n_train` and `n_test` cameras (disjoint sets) sit on the sphere of
    `radius` around the origin (its upper half, y > 0, when `upper_hemisphere`), look at the
    origin with y up, and see `size` x `size` pixels over a horizontal field of view of
    `camera_angle_x` radians (default: the Blender lego scene's). `seed` turns the camera
    spirals about y. `near` and `far` bound the rays (written to the transforms files).
    n_test 0 writes no test split.
    """

    size: int = 100
    n_train: int = 100
    n_test: int = 20
    camera_angle_x: float = 0.6911112070083618
    radius: float = 4.0
    extent: float = 1.0
    upper_hemisphere: bool = False
    seed: int = 0
    near: float = 2.0
    far: float = 6.0


@dataclass(frozen=True)
class RaysConfig:
    """A scene's training rays in the store: every pixel of the training views (images shrunk
    by `downscale`), in one random order drawn from `seed`, in chunks of `chunk` rays."""

    chunk: int = 65536
    downscale: int = 1
    seed: int = 0


@dataclass(frozen=True)
class NerfPicturesConfig:
    """What comes after a radiance field's training: its measurement, then its pictures.

    test_views: how many test views (spread evenly) the final PSNR and SSIM average over;
    None: every one. shown_views of them go into test_views.png and depth.png, kept from the
    measurement (not rendered again). The turntable GIF gets `turntable_frames` views (0: none)
    at `turntable_size` pixels on the longer side (never more than the test images'), within
    `seconds` (None: a tenth of the training time, at least 30 s): when its first frame shows
    that all would not fit, it gets fewer frames, still spread over the whole circle.
    """

    test_views: Optional[int] = None
    shown_views: int = 4
    turntable_frames: int = 24
    turntable_size: int = 128
    seconds: Optional[float] = None


@dataclass(frozen=True)
class NerfPipelineConfig:
    """The NeRF collection flow: scenes from meshes (`scene`), rays (`rays`), training (`training`),
    the registry alias of each new field, and its measurement and pictures (`pictures`)."""

    scene: MeshSceneConfig = field(default_factory=MeshSceneConfig)
    rays: RaysConfig = field(default_factory=RaysConfig)
    training: NerfConfig = field(default_factory=NerfConfig)
    alias: str = "champion"
    pictures: NerfPicturesConfig = field(default_factory=NerfPicturesConfig)


@dataclass(frozen=True)
class MetricsConfig:
    """Surface metrics: `n_points` area-weighted samples per mesh, F-score at `fscore_ratio` x diagonal."""

    n_points: int = 100_000
    fscore_ratio: float = 0.01
    seed: int = 0


@dataclass(frozen=True)
class PipelineConfig:
    """Everything the shape-collection pipeline needs besides where things are stored."""

    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    training: TrainConfig = field(default_factory=TrainConfig)
    grid: GridConfig = field(default_factory=GridConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    queries: QueriesConfig = field(default_factory=QueriesConfig)
    alias: str = "champion"


def config_to_dict(config: Any) -> dict:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    if not dataclasses.is_dataclass(config):
        raise TypeError(f"expected a config dataclass, got {type(config).__name__}")
    return json.loads(json.dumps(dataclasses.asdict(config)))


def config_from_dict(cls: type[T], data: Optional[Mapping[str, Any]], where: str = "config") -> T:
    """Build `cls` from `data`, filling defaults; unknown keys and wrong types raise ConfigError.

    `where` names the source in messages, e.g. "datasets/demo.yaml: config.training".
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(map(str, unknown))}; "
            f"expected some of {', '.join(fields)}"
        )
    values = {}
    for name, value in data.items():
        values[name] = _coerce(hints[name], value, f"{where}.{name}")
    try:
        config = cls(**values)
    except (TypeError, ValueError) as exc:  # pragma: no cover - dataclass with required fields
        raise ConfigError(f"{where}: {exc}") from exc
    _check_ranges(config, where)
    return config


def budget_progress(step: int, elapsed: float, steps: int, seconds: Optional[float]) -> float:
    """How far a run capped at `steps` and, when `seconds` is given, at that much wall time has
    come, 0 to 1: by steps, or by wall time when the time budget is nearer."""
    progress = step / steps
    if seconds is not None:
        progress = max(progress, elapsed / seconds)
    return min(progress, 1.0)


def config_replace(config: T, overrides: Mapping[str, Any], where: str = "overrides") -> T:
    """Return `config` with nested `overrides` applied (e.g. {"training": {"steps": 10}})."""
    merged = _deep_merge(config_to_dict(config), overrides)
    return config_from_dict(type(config), merged, where)


def fingerprint(*parts: Any) -> str:
    """A short stable hash of configs, dicts, strings and numbers (for "already done" records)."""
    canon = [config_to_dict(p) if dataclasses.is_dataclass(p) else p for p in parts]
    text = json.dumps(canon, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _deep_merge(base: dict, overrides: Mapping[str, Any]) -> dict:
    out = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if dataclasses.is_dataclass(tp):
        return config_from_dict(tp, value, where)
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_coerce(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported config type {tp!r}")  # pragma: no cover


NETWORK_KINDS = ("siren", "igr", "relu-pe", "idf")

_POSITIVE_INTS = {
    "n_surface", "steps", "batch_surface", "batch_offsurface", "width", "layers",
    "resolution", "chunk", "batch_points", "n_points", "log_every", "shapes_per_batch",
}
_NON_NEGATIVE_INTS = {"n_near", "n_uniform", "batch_uniform"}


def _check_ranges(config: Any, where: str) -> None:
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name in _POSITIVE_INTS and isinstance(value, int) and value <= 0:
            raise ConfigError(f"{where}.{f.name}: must be positive, got {value}")
        if f.name in _NON_NEGATIVE_INTS and isinstance(value, int) and value < 0:
            raise ConfigError(f"{where}.{f.name}: must be zero or more, got {value}")
    if isinstance(config, SamplingConfig):
        if not 0.0 < config.extent <= 1.0:
            raise ConfigError(f"{where}.extent: must be in (0, 1], got {config.extent}")
        if config.n_near and not config.near_sigmas:
            raise ConfigError(f"{where}.near_sigmas: needs at least one value when n_near > 0")
        if any(s <= 0 for s in config.near_sigmas):
            raise ConfigError(f"{where}.near_sigmas: must be positive, got {list(config.near_sigmas)}")
    if isinstance(config, TrainConfig):
        if config.seconds is not None and config.seconds <= 0:
            raise ConfigError(f"{where}.seconds: must be positive, got {config.seconds}")
        if config.lr <= 0 or config.lr_final <= 0:
            raise ConfigError(f"{where}.lr: learning rates must be positive")
        if config.device != "auto" and not (config.device == "cpu" or config.device.startswith("cuda")):
            raise ConfigError(f"{where}.device: expected auto, cpu or cuda[:N], got {config.device!r}")
    if isinstance(config, NetworkConfig):
        _check_network(config, where)
    if isinstance(config, IsoPointsConfig):
        _check_isopoints(config, where)
    if isinstance(config, GridConfig):
        if config.resolution < 2:
            raise ConfigError(f"{where}.resolution: must be at least 2, got {config.resolution}")
        if config.bound <= 0:
            raise ConfigError(f"{where}.bound: must be positive, got {config.bound}")
    if isinstance(config, RangeMeshConfig):
        _check_range_mesh(config, where)
    if isinstance(config, QueriesConfig) and config.isopoints < 0:
        raise ConfigError(f"{where}.isopoints: must be zero or more, got {config.isopoints}")
    if isinstance(config, NerfConfig):
        _check_nerf(config, where)
    if isinstance(config, MeshSceneConfig):
        _check_mesh_scene(config, where)
    if isinstance(config, MetricsConfig) and not 0 < config.fscore_ratio < 1:
        raise ConfigError(f"{where}.fscore_ratio: must be in (0, 1), got {config.fscore_ratio}")
    if isinstance(config, RaysConfig) and (config.chunk <= 0 or config.downscale <= 0):
        raise ConfigError(f"{where}: chunk and downscale must be positive")
    if isinstance(config, NerfPicturesConfig):
        _check_nerf_pictures(config, where)
    if isinstance(config, NerfPipelineConfig) and not _valid_alias(config.alias):
        raise ConfigError(f"{where}.alias: {config.alias!r} is not a usable registry alias")
    if isinstance(config, PipelineConfig) and not _valid_alias(config.alias):
        raise ConfigError(
            f"{where}.alias: {config.alias!r} is not a usable registry alias "
            "(letters, digits, '_' and '-', not starting with a digit, not 'latest')"
        )


def _check_network(config: NetworkConfig, where: str) -> None:
    if config.kind not in NETWORK_KINDS:
        raise ConfigError(f"{where}.kind: expected one of {', '.join(NETWORK_KINDS)}, got {config.kind!r}")
    for name in ("idf_omega_base", "idf_omega_displacement", "idf_nu", "idf_max_displacement"):
        if getattr(config, name) <= 0:
            raise ConfigError(f"{where}.{name}: must be positive, got {getattr(config, name)}")
    for name in ("idf_displacement_width", "idf_displacement_layers"):
        if getattr(config, name) is not None and getattr(config, name) <= 0:
            raise ConfigError(f"{where}.{name}: must be positive or null, got {getattr(config, name)}")
    if not 0.0 <= config.idf_base_fraction <= config.idf_blend_end <= 1.0:
        raise ConfigError(f"{where}.idf_base_fraction, idf_blend_end: need 0 <= idf_base_fraction <= "
                          f"idf_blend_end <= 1, got {config.idf_base_fraction} and {config.idf_blend_end}")
    if config.kind in ("igr", "relu-pe") and config.layers >= 2:
        # The layer before the skip connection outputs width - (encoded input) units, so the
        # concatenation is `width` wide again: the width must exceed the encoded input.
        encoded = 3 + (6 * config.frequencies if config.kind == "relu-pe" else 0)
        if config.width <= encoded:
            raise ConfigError(f"{where}.width: {config.kind} with {config.layers} layers needs width above the "
                              f"encoded input's {encoded} features (skip connection), got {config.width}")


def _check_isopoints(config: IsoPointsConfig, where: str) -> None:
    if config.normals not in ISOPOINT_NORMALS:
        raise ConfigError(f"{where}.normals: expected one of {', '.join(ISOPOINT_NORMALS)}, got {config.normals!r}")
    if not 0.0 < config.bilateral_angle <= 180.0:
        raise ConfigError(f"{where}.bilateral_angle: must be in (0, 180] degrees, got {config.bilateral_angle}")
    if not config.bilateral_radius > 0.0:
        raise ConfigError(f"{where}.bilateral_radius: must be positive, got {config.bilateral_radius}")
    if not 0.0 <= config.warmup < 1.0:
        raise ConfigError(f"{where}.warmup: must be in [0, 1) (a fraction of the run), got {config.warmup}")
    if not 0.0 < config.batch_share <= 1.0:
        raise ConfigError(f"{where}.batch_share: must be in (0, 1], got {config.batch_share}")
    for name in ("refresh_every", "max_iterations"):
        if getattr(config, name) < 1:
            raise ConfigError(f"{where}.{name}: must be at least 1, got {getattr(config, name)}")
    if config.neighbours < 3:
        raise ConfigError(f"{where}.neighbours: must be at least 3, got {config.neighbours}")
    if config.resample_iterations < 0:
        raise ConfigError(f"{where}.resample_iterations: must be zero or more, got {config.resample_iterations}")
    if config.jitter < 0:
        raise ConfigError(f"{where}.jitter: must be zero or more, got {config.jitter}")
    for name in ("tolerance", "max_step"):
        if not getattr(config, name) > 0:
            raise ConfigError(f"{where}.{name}: must be positive, got {getattr(config, name)}")


def _valid_alias(alias: str) -> bool:
    import re

    return bool(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_-]{0,254}", alias)) and alias.lower() != "latest"


def _check_range_mesh(config: RangeMeshConfig, where: str) -> None:
    if config.resolution < 2:
        raise ConfigError(f"{where}.resolution: must be at least 2, got {config.resolution}")
    if config.bound <= 0:
        raise ConfigError(f"{where}.bound: must be positive, got {config.bound}")
    for name in ("leaf", "batch_boxes", "batch_points", "tasks", "samples"):
        if getattr(config, name) < 1:
            raise ConfigError(f"{where}.{name}: must be positive, got {getattr(config, name)}")
    if config.mode not in ("affine", "interval"):
        raise ConfigError(f"{where}.mode: expected affine or interval, got {config.mode!r}")
    if config.max_symbols is not None and config.max_symbols < 0:
        raise ConfigError(f"{where}.max_symbols: must be zero or more, or null, got {config.max_symbols}")


def _check_mesh_scene(config: MeshSceneConfig, where: str) -> None:
    import math

    for name in ("size", "n_train"):
        if getattr(config, name) < 1:
            raise ConfigError(f"{where}.{name}: must be positive, got {getattr(config, name)}")
    if config.n_test < 0:
        raise ConfigError(f"{where}.n_test: must be zero or more, got {config.n_test}")
    if not 0.0 < config.camera_angle_x < math.pi:
        raise ConfigError(f"{where}.camera_angle_x: must be in (0, pi) radians, got {config.camera_angle_x}")
    if not (math.isfinite(config.extent) and config.extent > 0):
        raise ConfigError(f"{where}.extent: must be positive, got {config.extent}")
    if not (math.isfinite(config.radius) and config.radius > math.sqrt(3.0) * config.extent):
        raise ConfigError(f"{where}.radius: must exceed sqrt(3) x extent = {math.sqrt(3.0) * config.extent:.4g} "
                          f"(cameras outside the mesh's cube), got {config.radius}")
    if not (math.isfinite(config.far) and 0.0 <= config.near < config.far):
        raise ConfigError(f"{where}.near, far: need 0 <= near < far, got {config.near} and {config.far}")


def _check_nerf_pictures(config: NerfPicturesConfig, where: str) -> None:
    if config.test_views is not None and config.test_views <= 0:
        raise ConfigError(f"{where}.test_views: must be positive (or null for every test view), got {config.test_views}")
    for name in ("shown_views", "turntable_size"):
        if getattr(config, name) <= 0:
            raise ConfigError(f"{where}.{name}: must be positive, got {getattr(config, name)}")
    if config.turntable_frames < 0:
        raise ConfigError(f"{where}.turntable_frames: must be zero or more, got {config.turntable_frames}")
    if config.seconds is not None and config.seconds <= 0:
        raise ConfigError(f"{where}.seconds: must be positive (or null for the default), got {config.seconds}")


def _check_nerf(config: NerfConfig, where: str) -> None:
    if config.model not in NERF_MODELS:
        raise ConfigError(f"{where}.model: expected one of {', '.join(NERF_MODELS)}, got {config.model!r}")
    for name in ("batch_rays", "position_frequencies", "direction_frequencies", "depth", "width", "n_coarse",
                 "hash_levels", "hash_features", "hash_base_resolution", "hash_finest_resolution", "ngp_width",
                 "grid_resolution", "grid_every", "eval_every", "checkpoint_every", "chunk_rays"):
        if getattr(config, name) <= 0:
            raise ConfigError(f"{where}.{name}: must be positive, got {getattr(config, name)}")
    if config.n_fine < 0 or config.eval_views < 0:
        raise ConfigError(f"{where}: n_fine and eval_views must be zero or more")
    if not 0 <= config.skip < config.depth:
        raise ConfigError(f"{where}.skip: must be in [0, depth), got {config.skip}")
    if not 10 <= config.hash_log2_size <= 24:
        raise ConfigError(f"{where}.hash_log2_size: must be in [10, 24], got {config.hash_log2_size}")
    if config.hash_finest_resolution < config.hash_base_resolution:
        raise ConfigError(f"{where}.hash_finest_resolution: must be at least hash_base_resolution")
    if config.bound <= 0 or (config.render_step is not None and config.render_step <= 0):
        raise ConfigError(f"{where}: bound and render_step must be positive")
    if config.lr is not None and config.lr <= 0 or not 0 < config.lr_final_fraction <= 1:
        raise ConfigError(f"{where}: lr must be positive and lr_final_fraction in (0, 1]")
    if config.seconds is not None and config.seconds <= 0:
        raise ConfigError(f"{where}.seconds: must be positive, got {config.seconds}")
    if len(config.background) != 3 or not all(0.0 <= c <= 1.0 for c in config.background):
        raise ConfigError(f"{where}.background: expected three values in [0, 1], got {list(config.background)}")
    if config.device != "auto" and not (config.device == "cpu" or config.device.startswith("cuda")):
        raise ConfigError(f"{where}.device: expected auto, cpu or cuda[:N], got {config.device!r}")
