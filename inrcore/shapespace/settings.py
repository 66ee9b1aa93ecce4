"""Settings of learned shape spaces: the procedural collection, DeepSDF samples, the auto-decoder,
code fitting, partial scans, the Occupancy Network and the `shapespace` collection flow.

Lengths are in the normalised frame every shape is moved to first: the bounding box centred at
the origin, its longest side spanning [-extent, extent] (0.9 by default, as the SDF flow), so
points live in [-1, 1]^3. The defaults are sized for two CPU cores and the tests; the papers'
sizes are given beside each field (and `DecoderConfig.paper()`, `OccNetConfig.paper()`), and the
networks take them on a CUDA device unless their `size` says otherwise (`AutoDecoderConfig.for_device`).
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal, Optional, Union

from pydantic import Field

from inrcore.geometry.settings import MetricsConfig
from inrcore.settings import (
    Count,
    CountOrZero,
    DeviceName,
    Flag,
    Fraction,
    Integer,
    Number,
    Numbers,
    OpenFraction,
    PositiveNumber,
    RegistryAlias,
    SettingError,
    interval,
    settings_class,
)


FAMILIES = ("chair", "table", "lamp", "mug", "airplane")
Family = Literal["chair", "table", "lamp", "mug", "airplane"]
NetworkSize = Literal["auto", "cpu", "paper"]  # see AutoDecoderConfig.for_device
LocalEncoder = Literal["average", "pool"]  # see OccNetConfig.local_encoder
MirrorViews = Literal["", "x", "y", "z", "xy", "xz", "yz", "xyz"]  # see OccNetConfig.mirror_views
CodeStart = Literal["nearest", "random"]  # see CodeFitConfig.init
BFloat16 = Union[Flag, Literal["auto"]]  # see OccNetConfig.bfloat16
Share = interval(0.0, 1.0, "[)")  # at least 0, below 1


@settings_class
class GeneratorConfig:
    """The procedural collection (`inrcore.shapespace.procedural`): `per_family` shapes of each family,
    parametric primitives joined by manifold3d booleans (watertight by construction), a seeded
    `test_fraction` of each family held out."""

    families: tuple[Family, ...] = ("chair", "table", "mug")
    per_family: Count = 34
    test_fraction: OpenFraction = 0.2
    seed: Integer = 0

    def __post_init__(self):
        if not self.families:
            raise SettingError("families", f"name at least one family (of {', '.join(FAMILIES)})")


@settings_class
class DeepSdfSamplingConfig:
    """DeepSDF's training samples of one shape (`inrcore.shapespace.samples`).

    `near_fraction` of the `n_samples` points are surface points moved by Gaussian noise of
    variance `variances[0]` or `variances[1]` (half each; the authors: 47/50 of 500k points,
    variances 0.005 and 0.0005), the rest uniform in [-1, 1]^3; signs from the generalised winding
    number (`inrcore.geometry.sampling.signed_distance`). Also `n_surface` oriented surface points
    (for metrics, partial scans and the occupancy network's input clouds) and `n_occupancy`
    uniform points in the box padded by `padding` with inside/outside labels (occupancy training
    and IoU).
    """

    n_samples: Count = 50_000
    near_fraction: Fraction = 0.94
    variances: Numbers = (0.005, 0.0005)
    n_surface: Count = 20_000
    n_occupancy: Count = 50_000
    padding: Number = 0.1
    extent: Fraction = 0.9
    seed: Integer = 0


@settings_class
class DecoderConfig:
    """The auto-decoder's network (Park et al. 2019): `layers` dense layers of `width` with ReLU, the
    latent code and the coordinates fed in again before layer `skip_at` (the authors: 8 × 512, at 4),
    weight normalisation and dropout `dropout` on every hidden layer, a final tanh. Defaults are a
    smaller network for two CPU cores; `DecoderConfig.paper()` is the authors' size."""

    latent: Count = 64
    width: Count = 128
    layers: Count = 8
    skip_at: CountOrZero = 4
    dropout: Number = 0.0
    weight_norm: Flag = True

    @staticmethod
    def paper() -> "DecoderConfig":
        return DecoderConfig(latent=256, width=512, layers=8, skip_at=4, dropout=0.2, weight_norm=True)


@settings_class
class AutoDecoderConfig:
    """Training the decoder and one code per shape (`inrcore.shapespace.autodecoder`).

    Each step takes `shapes_per_batch` shapes and `samples_per_shape` of their samples (half with
    positive, half with negative distance when both exist); loss = mean L1 between the clamped
    prediction and the clamped target (`clamp`, the authors 0.1) + code_reg · min(1, epoch /
    code_reg_ramp) · mean ‖z‖ over the batch's codes (the authors' sum of ‖z‖ over the samples
    divided by their number). Adam with `lr_decoder` and `lr_codes` (the authors 5e-4 and 1e-3, with
    batches of 64 shapes × 16,384 samples), both multiplied by `lr_factor` every `lr_every` epochs (the
    authors: 0.5 every 500 of 2,001 epochs). Codes start N(0, code_init_std²) and are kept within `code_max_norm`.
    An epoch is one pass over the training shapes. `seconds` stops earlier when given. The defaults
    (every shape of a collection up to 128 in each step, 512 samples each, codes at 5e-3) lowered the
    loss reached in 240 s on two CPU cores from 0.0199 (16 shapes × 2,048, codes at 1e-3) to 0.0078
    (BENCHMARKS.md, "Learned shape spaces"): each code is updated at every step, not one in five.
    `size` picks the decoder's size where training runs (`for_device`): `cpu` keeps `decoder` as set,
    `paper` is the authors' 8 × 512 with 256-d codes, `auto` the authors' on a CUDA device unless
    `decoder` was changed from its defaults, and `decoder` as set elsewhere.
    """

    decoder: DecoderConfig = dataclasses.field(default_factory=DecoderConfig)
    size: NetworkSize = "auto"
    epochs: Count = 400
    seconds: Optional[PositiveNumber] = None
    shapes_per_batch: Count = 128
    samples_per_shape: Count = 512
    lr_decoder: PositiveNumber = 5e-4
    lr_codes: PositiveNumber = 5e-3
    lr_every: Count = 150
    lr_factor: OpenFraction = 0.5
    clamp: PositiveNumber = 0.1
    code_reg: Number = 1e-4
    code_reg_ramp: Count = 100
    code_init_std: PositiveNumber = 0.01
    code_max_norm: PositiveNumber = 1.0
    seed: Integer = 0
    log_every: Count = 10

    def for_device(self, device_type: str) -> "AutoDecoderConfig":
        """These settings with the decoder `size` gives on a device of this type ("cuda", "cpu", ...)."""
        if _paper_size(self.size, device_type, self.decoder == DecoderConfig()):
            return dataclasses.replace(self, decoder=DecoderConfig.paper())
        return self


@settings_class
class CodeFitConfig:
    """Reconstruction by code optimisation with the decoder frozen (the authors: 800 steps, Adam lr
    5e-3 divided by 10 at step 400, 8,000 samples per step, init N(0, 0.01²), penalty 1e-4 · mean z²).
    `free_space` weighs the hinge max(0, -prediction) on points only known to be outside (scans).

    init: where each code starts. "nearest": at the training code of the lowest objective on `samples`
    of the target's points (one pass over the space's codes, no steps), so the fit refines a shape of the
    right kind instead of settling on the first one it reaches from the mean (BENCHMARKS.md, "DeepSDF:
    codes started at the nearest training code"). "random": the authors' N(0, init_std²).
    """

    steps: Count = 800
    seconds: Optional[PositiveNumber] = None
    lr: PositiveNumber = 5e-3
    drop_at: OpenFraction = 0.5
    drop_factor: OpenFraction = 0.1
    samples: Count = 8000
    init: CodeStart = "nearest"
    init_std: PositiveNumber = 0.01
    code_reg: Number = 1e-4
    clamp: PositiveNumber = 0.1
    free_space: Number = 1.0
    seed: Integer = 0


@settings_class
class ScanConfig:
    """One depth image of a shape and the samples made from it (`inrcore.shapespace.scans`).

    A pinhole camera `distance` from the origin (normalised frame), looking at it from a seeded
    azimuth with elevation in `elevation_deg`, `resolution`² pixels over `fov_deg`; Gaussian depth
    noise of standard deviation `noise` (α). Per hit: the surface point (distance 0), one point
    `offset` in front of and one behind it along the ray (distance ±offset·|n·d| with n the
    surface normal estimated from the depth image, d the ray), and `free_per_ray` points uniform
    along the ray between `near` and the hit minus `free_margin`, known only to be outside.

    noise: α, the standard deviation of the depth noise in normalised units (the seed's figure:
    0, 0.01, 0.02, 0.03, 0.05).
    denoise: estimate the depth noise from the image and, where it is above offset / 4, smooth the
    depth edge-aware over a window of at most `denoise_radius` pixels before making the samples
    (`inrcore.shapespace.scans.denoised`); a clean scan is used as it is either way.
    """

    resolution: Count = 128
    fov_deg: PositiveNumber = 45.0
    distance: PositiveNumber = 2.5
    elevation_deg: Numbers = (10.0, 45.0)
    noise: Annotated[Number, Field(ge=0)] = 0.0
    offset: PositiveNumber = 0.02
    free_per_ray: CountOrZero = 1
    free_margin: PositiveNumber = 0.05
    denoise: Flag = True
    denoise_radius: CountOrZero = 6
    seed: Integer = 0


@settings_class
class OccNetConfig:
    """The Occupancy Network (Mescheder et al. 2019, `inrcore.shapespace.occnet`): a PointNet encoder
    with residual blocks over `n_points` surface points with Gaussian noise `noise` (the authors: 300,
    0.005), features `hidden` and code `code` (the authors 512, 512); a decoder of `blocks` residual
    blocks of `decoder_hidden` with conditional batch normalisation (the authors 5 of 256), reading
    with `neighbours` k > 0 each query's k nearest cloud points' features besides the code (the authors:
    none, 0), joined by `local_encoder`: "average" weighs them by inverse square distance
    (`occnet_local.local_features`), "pool" passes each with its offset from the query through a learned layer
    and takes their maximum (`occnet_local.pooled_local_features`, a PointNet over the neighbourhood, of
    `local_width` features); `encoder_neighbours` k > 0 (not the authors', 0) joins each cloud point's
    features in two of the encoder's blocks by their maximum over its k nearest cloud points instead of
    the whole cloud (`occnet.LOCAL_POOL_BLOCKS`, as their Convolutional Occupancy Networks pool within grid
    cells), so the points' features, which the local reading gathers, tell the surface around them; binary
    cross-entropy on logits at `n_query` points per shape uniform in the box padded by the samples'
    padding, of which `near_fraction` (the authors: 0) come from the shape's DeepSDF samples near the
    surface, labelled by their sign; Adam `lr` (the authors 1e-4, batch 64), constant as the authors' or,
    with `lr_final`, annealed to it along a cosine over the training (steps or seconds, whichever ends it
    first). `scale_jitter` a > 0 stretches each drawn shape (its cloud and queries together) by factors
    uniform in [1 - a, 1 + a] along each axis, rescaled so that its longest half-side is kept (the
    normalised frame's): more shapes' proportions from few (the authors: none); `warp_jitter` b > 0
    then bends each axis piecewise linearly (`occnet_training.warp_axes`: four equal pieces scaled by
    factors uniform in [1 - b, 1 + b], the ends kept), so parts change proportions apart. Meshing and IoU at
    `threshold` (the authors' 0.2, chosen on their validation set); with `choose_threshold`, training
    ends by choosing it instead from `THRESHOLD_CANDIDATES`: the one with the highest median IoU on up
    to `threshold_shapes` training shapes, each from a fresh noisy cloud. `statistics_batches` n > 0 (not
    the authors'; 0 by default): training ends, before the threshold's choice, by replacing the
    batch-norm running statistics with their mean over n batches of the training shapes unstretched
    and unbent (`occnet_training.recomputed_statistics`). `average_decay` d in (0, 1) (not the
    authors'; 0, off, by default): training keeps an exponential moving average of the weights
    (`occnet_training.moved_average`; its weights are on average a tenth of the steps taken old, until
    d caps the warm-up) and ends with the average instead of the last weights; it needs
    `statistics_batches`, since the statistics training leaves belong to the last weights. `bfloat16` trains with the
    forward passes in bfloat16 (torch.autocast; the loss, the weights, Adam and the batch-norm
    statistics stay float32): faster where the hardware multiplies bfloat16 (CUDA, CPUs with AMX or
    AVX-512 BF16), several times slower elsewhere, where true warns; "auto" uses it only where the training
    device multiplies it (`inrcore.device.multiplies_bfloat16`); evaluation is float32 either way.
    `mirror_views` (not the authors'; "" by default), letters of x, y, z: evaluation averages the occupancy
    probability over the input cloud and its mirror images across those of these coordinate planes through the
    origin that the cloud is symmetric about (`occnet_views`; "xz" for the generated collection, y up); training
    is unchanged, the threshold's choice uses the views. `refine_steps` n > 0 (not the authors'; 0 by default):
    before evaluating a cloud's shape, n Adam steps at `refine_lr` move its code (each view's) so that the
    logits at the cloud's own points near 0, held near the encoder's code by `refine_weight` times their mean
    squared difference (`occnet_refine`); training is unchanged, the threshold's choice refines too. The mirror
    views and the refinement act at evaluation alone (`EVALUATION_FIELDS`). `size` as `AutoDecoderConfig.size`,
    for the fields `paper()` sets (`for_device`)."""

    n_points: Count = 300
    noise: Annotated[Number, Field(ge=0)] = 0.005
    hidden: Count = 128
    code: Count = 128
    decoder_hidden: Count = 128
    blocks: Count = 5
    neighbours: CountOrZero = 0
    local_encoder: LocalEncoder = "average"
    local_width: Count = 32
    encoder_neighbours: CountOrZero = 0
    steps: Count = 3000
    seconds: Optional[PositiveNumber] = None
    batch: Count = 16
    n_query: Count = 2048
    near_fraction: Share = 0.0
    lr: PositiveNumber = 1e-4
    lr_final: Optional[PositiveNumber] = None
    scale_jitter: Share = 0.0
    warp_jitter: Share = 0.0
    threshold: OpenFraction = 0.2
    choose_threshold: Flag = False
    threshold_shapes: Count = 32
    statistics_batches: CountOrZero = 0
    average_decay: Share = 0.0
    seed: Integer = 0
    log_every: Count = 50
    size: NetworkSize = "auto"
    bfloat16: BFloat16 = False
    mirror_views: MirrorViews = ""
    refine_steps: CountOrZero = 0
    refine_lr: PositiveNumber = 1e-3
    refine_weight: Annotated[Number, Field(ge=0)] = 1.0

    def __post_init__(self):
        if self.average_decay and not self.statistics_batches:
            raise SettingError("average_decay", "needs statistics_batches > 0: the batch-norm statistics training "
                               "leaves belong to the last weights, not to their average")

    @staticmethod
    def paper() -> "OccNetConfig":
        return OccNetConfig(hidden=512, code=512, decoder_hidden=256, blocks=5, batch=64)

    def for_device(self, device_type: str) -> "OccNetConfig":
        """These settings with the network size `size` gives on a device of this type (the other fields kept)."""
        default, paper = OccNetConfig(), OccNetConfig.paper()
        unchanged = all(getattr(self, k) == getattr(default, k) for k in PAPER_OCCNET_FIELDS)
        if _paper_size(self.size, device_type, unchanged):
            return dataclasses.replace(self, **{k: getattr(paper, k) for k in PAPER_OCCNET_FIELDS})
        return self


PAPER_OCCNET_FIELDS = ("hidden", "code", "decoder_hidden", "blocks", "batch")
# read by evaluation alone (the training steps never; the threshold's choice evaluates with them)
EVALUATION_FIELDS = ("mirror_views", "refine_steps", "refine_lr", "refine_weight")


def evaluated_with(network: OccNetConfig, command: OccNetConfig, given) -> OccNetConfig:
    """A saved network's settings with those `EVALUATION_FIELDS` that a command names in `given` (the
    field names it sets, e.g. by --set) taken from the command's settings `command`; the others the
    network's own, so a command that names none evaluates as the network was trained to be, and one
    that names `refine_steps` 0 turns a saved refinement off."""
    named = set(given)
    return dataclasses.replace(network, **{k: getattr(command, k) for k in EVALUATION_FIELDS if k in named})


def _paper_size(size: str, device_type: str, unchanged: bool) -> bool:
    """Whether a network of size `size` ("cpu", "paper", "auto") takes the authors' size on this device:
    "auto" does on CUDA when the user left the network's fields at their defaults."""
    return size == "paper" or (size == "auto" and device_type == "cuda" and unchanged)


@settings_class
class ShapeMeshConfig:
    """Meshing members of a shape space: MISE (`inrcore.queries.mise`) from `start`³ cells refined
    `levels` times (resolution start · 2^levels), or dense marching cubes at that resolution."""

    method: Literal["mise", "dense"] = "mise"
    start: Count = 32
    levels: CountOrZero = 2
    bound: PositiveNumber = 1.0


@settings_class
class ShapeSpaceConfig:
    """The `shapespace` section of a manifest: the collection flow's settings.

    `interpolations` pairs of training shapes are interpolated in `interpolation_steps` steps;
    `noise_levels` are the completion's depth-noise levels α (the seed's figure).
    """

    sampling: DeepSdfSamplingConfig = dataclasses.field(default_factory=DeepSdfSamplingConfig)
    training: AutoDecoderConfig = dataclasses.field(default_factory=AutoDecoderConfig)
    fitting: CodeFitConfig = dataclasses.field(default_factory=CodeFitConfig)
    scan: ScanConfig = dataclasses.field(default_factory=ScanConfig)
    noise_levels: Numbers = (0.0, 0.01, 0.02, 0.03, 0.05)
    occnet: OccNetConfig = dataclasses.field(default_factory=OccNetConfig)
    occnet_enabled: Flag = True
    mesh: ShapeMeshConfig = dataclasses.field(default_factory=ShapeMeshConfig)
    metrics: MetricsConfig = dataclasses.field(default_factory=lambda: MetricsConfig(n_points=30_000))
    interpolations: CountOrZero = 1
    interpolation_steps: Count = 5
    alias: RegistryAlias = "champion"
    device: DeviceName = "auto"
