"""Settings of radiance fields (model and training, pictures), of scenes rendered from meshes, of
ray batches, and of the NeRF collection flow."""

from __future__ import annotations

import dataclasses
import math
from typing import Annotated, Literal, Optional

from pydantic import Field

from inrcore.settings import (Count, CountOrZero, DeviceName, ExecutionOnly, Flag, Fraction, Integer, Number,
                              Numbers, PositiveNumber, RegistryAlias, SettingError, interval, positive_or_null,
                              settings_class)


FieldOfView = interval(0.0, math.pi, "()", " radians")


@settings_class
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

    model: Literal["nerf", "ngp"] = "ngp"
    steps: Count = 5000
    seconds: Optional[PositiveNumber] = None
    batch_rays: Count = 1024
    lr: Annotated[Optional[Number], positive_or_null("the model's own")] = None
    lr_final_fraction: Fraction = 0.1
    bound: PositiveNumber = 1.5
    background: Numbers = (1.0, 1.0, 1.0)
    positional_encoding: Flag = True
    view_dependent: Flag = True
    position_frequencies: Count = 10
    direction_frequencies: Count = 4
    depth: Count = 8
    width: Count = 256
    skip: CountOrZero = 4
    n_coarse: Count = 64
    n_fine: CountOrZero = 128
    hash_levels: Count = 16
    hash_features: Count = 2
    hash_log2_size: Annotated[Integer, Field(ge=10, le=24)] = 17
    hash_base_resolution: Count = 16
    hash_finest_resolution: Count = 1024
    ngp_width: Count = 64
    grid_resolution: Count = 64
    grid_every: Count = 16
    render_step: Annotated[Optional[Number], positive_or_null("the box's diagonal / 256")] = None
    eval_every: Count = 500
    eval_views: CountOrZero = 2
    checkpoint_every: Count = 500
    chunk_rays: Count = 4096
    seed: Integer = 0
    device: Annotated[DeviceName, ExecutionOnly] = "auto"

    def __post_init__(self):
        if not self.skip < self.depth:
            raise SettingError("skip", f"must be in [0, depth), got {self.skip}")
        if self.hash_finest_resolution < self.hash_base_resolution:
            raise SettingError("hash_finest_resolution", "must be at least hash_base_resolution")
        if len(self.background) != 3 or not all(0.0 <= c <= 1.0 for c in self.background):
            raise SettingError("background", f"expected three values in [0, 1], got {list(self.background)}")


@settings_class
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

    size: Count = 100
    n_train: Count = 100
    n_test: CountOrZero = 20
    camera_angle_x: FieldOfView = 0.6911112070083618
    radius: Number = 4.0
    extent: PositiveNumber = 1.0
    upper_hemisphere: Flag = False
    seed: Integer = 0
    near: Number = 2.0
    far: Number = 6.0

    def __post_init__(self):
        if not (math.isfinite(self.extent) and self.extent > 0):
            raise SettingError("extent", f"must be positive, got {self.extent}")
        if not (math.isfinite(self.radius) and self.radius > math.sqrt(3.0) * self.extent):
            raise SettingError("radius", f"must exceed sqrt(3) x extent = {math.sqrt(3.0) * self.extent:.4g} "
                                         f"(cameras outside the mesh's cube), got {self.radius}")
        if not (math.isfinite(self.far) and 0.0 <= self.near < self.far):
            raise SettingError("near, far", f"need 0 <= near < far, got {self.near} and {self.far}")


@settings_class
class RaysConfig:
    """A scene's training rays in the store: every pixel of the training views (images shrunk
    by `downscale`), in one random order drawn from `seed`, in chunks of `chunk` rays."""

    chunk: Count = 65536
    downscale: Count = 1
    seed: Integer = 0


@settings_class
class NerfPicturesConfig:
    """What comes after a radiance field's training: its measurement, then its pictures.

    test_views: how many test views (spread evenly) the final PSNR and SSIM average over;
    None: every one. shown_views of them go into test_views.png and depth.png, kept from the
    measurement (not rendered again). The turntable GIF gets `turntable_frames` views (0: none)
    at `turntable_size` pixels on the longer side (never more than the test images'), within
    `seconds` (None: a tenth of the training time, at least 30 s): when its first frame shows
    that all would not fit, it gets fewer frames, still spread over the whole circle.
    """

    test_views: Annotated[Optional[Integer], positive_or_null("every test view")] = None
    shown_views: Count = 4
    turntable_frames: CountOrZero = 24
    turntable_size: Count = 128
    seconds: Annotated[Optional[Number], positive_or_null("the default")] = None


@settings_class
class NerfPipelineConfig:
    """The NeRF collection flow: scenes from meshes (`scene`), rays (`rays`), training (`training`),
    the registry alias of each new field, and its measurement and pictures (`pictures`)."""

    scene: MeshSceneConfig = dataclasses.field(default_factory=MeshSceneConfig)
    rays: RaysConfig = dataclasses.field(default_factory=RaysConfig)
    training: NerfConfig = dataclasses.field(default_factory=NerfConfig)
    alias: RegistryAlias = "champion"
    pictures: NerfPicturesConfig = dataclasses.field(default_factory=NerfPicturesConfig)
