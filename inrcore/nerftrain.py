"""Training a radiance field on batches of rays, measuring it on held-out views, saving it.

`train_radiance_field` runs the optimisation loop: each step draws a batch of rays
(origins, unit directions, colours) from any iterator of numpy arrays (see
`inrcore.raybatches`), renders it, and minimises the squared colour error (for NeRF the
coarse network's too). Every `eval_every` steps it renders `eval_views` test views and
hands PSNR/SSIM and the pictures to `on_eval`; every `checkpoint_every` steps it writes a
checkpoint (weights, optimiser, occupancy grid, step, clock, random state) that a later
call with the same config resumes from. The training clock (`seconds`) counts training
only, not the evaluations in between, so PSNR-against-time curves measure training.

After training, numbers come before pictures: `measure_test_views` renders the test views
once (PSNR, SSIM, keeping the few renders and depth maps the pictures need), then
`write_test_pictures` lays those out without rendering again, and `render_turntable` renders
a small GIF within a time budget (`picture_budget`). `seconds_after_training` predicts both
from an in-training evaluation's render speed, so commands can say how long the rest takes.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch

from .config import NerfConfig, NerfPicturesConfig, budget_progress, config_from_dict, config_to_dict, fingerprint
from .files import write_atomic
from .imagemetrics import psnr, ssim
from .nerf import NerfRenderer, NgpRenderer, build_renderer, render_rays_in_chunks
from .rays import rays_from_cameras
from .scenes import Intrinsics, SceneSplit

DEFAULT_LR = {"nerf": 5e-4, "ngp": 1e-2}


@dataclass
class NerfTrainResult:
    """What training gives back: the renderer, steps run, training seconds, loss history."""

    renderer: Any
    steps: int
    seconds: float
    resumed_from: int = 0
    history: list[dict] = field(default_factory=list)


def learning_rate(config: NerfConfig, progress: float) -> float:
    """Exponential decay from the model's learning rate to lr x lr_final_fraction at progress 1."""
    lr = config.lr or DEFAULT_LR[config.model]
    return lr * config.lr_final_fraction ** min(max(progress, 0.0), 1.0)


def make_optimizer(renderer, config: NerfConfig) -> torch.optim.Optimizer:
    """Adam: NeRF's (betas 0.9/0.999); NGP's hash tables with eps 1e-15 and betas 0.9/0.99, its MLPs
    with a 1e-6 weight decay (as Instant-NGP)."""
    lr = config.lr or DEFAULT_LR[config.model]
    if isinstance(renderer, NgpRenderer):
        field_ = renderer.field
        return torch.optim.Adam([
            {"params": list(field_.encoding.parameters()), "weight_decay": 0.0},
            {"params": list(field_.density_net.parameters()) + list(field_.colour_net.parameters()),
             "weight_decay": 1e-6},
        ], lr=lr, betas=(0.9, 0.99), eps=1e-15)
    params = [p for module in renderer.modules().values() for p in module.parameters()]
    return torch.optim.Adam(params, lr=lr)


def state_of(renderer) -> dict[str, torch.Tensor]:
    """All weights and buffers of a renderer, keys prefixed by module ("coarse.", "field.", "grid.")."""
    return {f"{name}.{key}": value for name, module in renderer.modules().items()
            for key, value in module.state_dict().items()}


def load_state(renderer, state: dict[str, torch.Tensor]) -> None:
    for name, module in renderer.modules().items():
        prefix = f"{name}."
        module.load_state_dict({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})


def checkpoint_key(config: NerfConfig, data_key: str) -> str:
    """What a checkpoint must match to be resumed: the config (less its budget) and the data."""
    budget_free = {k: v for k, v in config_to_dict(config).items() if k not in ("steps", "seconds", "device")}
    return fingerprint(budget_free, data_key)


def train_radiance_field(
    config: NerfConfig,
    batches: Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]],
    near: float,
    far: float,
    device: torch.device,
    test: Optional[SceneSplit] = None,
    on_log: Optional[Callable[[dict], None]] = None,
    on_eval: Optional[Callable[[int, dict, list[np.ndarray]], None]] = None,
    checkpoint_path: Optional[str] = None,
    data_key: str = "",
    log_every: int = 50,
) -> NerfTrainResult:
    """Train `config`'s model on ray batches until `steps` or `seconds` (training time) runs out.

    Args:
        batches: yields (origins [B, 3], unit directions [B, 3], colours [B, 3]) float32 arrays.
        near, far: the sampling range of NeRF's rays (NGP marches the scene box).
        test: held-out views for `on_eval` every `eval_every` steps (and at the end).
        on_log: called with {"step", "loss", "psnr", "lr", "seconds", "samples"} every `log_every` steps.
        on_eval: called with (step, {"psnr", "ssim", "seconds", "render_seconds"}, rendered test images
            [H, W, 3] uint8); "render_seconds" is how long rendering those views took (see `eval_rays`).
        checkpoint_path: a file to resume from (when it matches `config` and `data_key`) and to write.
        data_key: identifies the training data (e.g. the rays' fingerprint) for resuming.
    """
    renderer = build_renderer(config, near, far, device)
    optimizer = make_optimizer(renderer, config)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    key = checkpoint_key(config, data_key)
    step, elapsed = 0, 0.0
    if checkpoint_path and Path(checkpoint_path).exists():
        saved = torch.load(checkpoint_path, map_location=device, weights_only=False)
        if saved.get("key") == key:
            load_state(renderer, saved["state"])
            optimizer.load_state_dict(saved["optimizer"])
            generator.set_state(saved["generator"].cpu() if device.type == "cpu" else saved["generator"])
            step, elapsed = int(saved["step"]), float(saved["elapsed"])
    resumed_from = step
    history: list[dict] = []
    ngp = isinstance(renderer, NgpRenderer)

    def train_mode(on: bool) -> None:
        for module in renderer.modules().values():
            module.train(on)

    def evaluate_now(at_step: int) -> None:
        if test is None or on_eval is None or config.eval_views == 0:
            return
        train_mode(False)
        started = time.perf_counter()
        metrics, images = evaluate_views(renderer, test, view_indices(len(test.images), config.eval_views),
                                         config.chunk_rays)
        train_mode(True)
        on_eval(at_step, {**metrics, "seconds": elapsed, "render_seconds": time.perf_counter() - started}, images)

    def save_checkpoint() -> None:
        if not checkpoint_path:
            return
        payload = {"key": key, "step": step, "elapsed": elapsed, "state": state_of(renderer),
                   "optimizer": optimizer.state_dict(), "generator": generator.get_state()}
        write_atomic(checkpoint_path, lambda tmp: torch.save(payload, tmp))

    train_mode(True)
    clock = time.perf_counter()
    while step < config.steps and (config.seconds is None or elapsed < config.seconds):
        progress = budget_progress(step, elapsed, config.steps, config.seconds)
        lr = learning_rate(config, progress)
        for group in optimizer.param_groups:
            group["lr"] = lr
        if ngp and step % config.grid_every == 0:
            renderer.grid.update(renderer.field.density, step, generator)
        origins, directions, colours = (torch.from_numpy(np.asarray(a)).to(device) for a in next(batches))
        result = renderer.render(origins, directions, perturb=True, generator=generator)
        loss = torch.mean((result["rgb"] - colours) ** 2)
        if "rgb_coarse" in result and isinstance(renderer, NerfRenderer) and renderer.fine is not None:
            loss = loss + torch.mean((result["rgb_coarse"] - colours) ** 2)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        now = time.perf_counter()
        elapsed += now - clock
        clock = now
        if step % log_every == 0 or step == 1:
            mse = float(torch.mean((result["rgb"].detach() - colours) ** 2))
            entry = {"step": step, "loss": float(loss.detach()), "psnr": -10.0 * math.log10(max(mse, 1e-10)), "lr": lr,
                     "seconds": elapsed, "samples": int(result["samples"])}
            history.append(entry)
            if on_log:
                on_log(entry)
        if step % config.checkpoint_every == 0:
            save_checkpoint()
        if step % config.eval_every == 0:
            evaluate_now(step)
            clock = time.perf_counter()
    save_checkpoint()
    train_mode(False)
    return NerfTrainResult(renderer, step, elapsed, resumed_from, history)


def view_indices(count: int, wanted: int) -> list[int]:
    """`wanted` view indices spread evenly over `count` views."""
    if wanted >= count:
        return list(range(count))
    return sorted({int(round(i * (count - 1) / max(wanted - 1, 1))) for i in range(wanted)})


def render_view(renderer, pose: np.ndarray, intrinsics: Intrinsics, chunk: int = 4096) -> dict[str, np.ndarray]:
    """Render one camera (pose [4, 4] camera-to-world): "rgb" [H, W, 3] float32, "depth" [H, W],
    "opacity" [H, W], on the renderer's device, deterministically."""
    device = _device_of(renderer)
    poses = torch.as_tensor(np.asarray(pose, dtype=np.float32)[None], device=device)
    origins, directions = rays_from_cameras(poses, intrinsics)
    out = render_rays_in_chunks(renderer, origins.reshape(-1, 3), directions.reshape(-1, 3), chunk)
    h, w = intrinsics.height, intrinsics.width
    return {"rgb": out["rgb"].reshape(h, w, 3).clamp(0, 1).cpu().numpy(),
            "depth": out["depth"].reshape(h, w).cpu().numpy(), "opacity": out["opacity"].reshape(h, w).cpu().numpy()}


def evaluate_views(renderer, split: SceneSplit, indices: Optional[list[int]] = None,
                   chunk: int = 4096) -> tuple[dict[str, float], list[np.ndarray]]:
    """Mean PSNR and SSIM of the renderer over views `indices` of `split` (default all), and the
    rendered images [H, W, 3] uint8."""
    indices = list(range(len(split.images))) if indices is None else indices
    psnrs, ssims, images = [], [], []
    for i in indices:
        rgb = render_view(renderer, split.poses[i], split.intrinsics, chunk)["rgb"]
        psnrs.append(float(psnr(rgb, split.images[i])))
        ssims.append(float(ssim(rgb, split.images[i])))
        images.append(to_uint8(rgb))
    return {"psnr": float(np.mean(psnrs)), "ssim": float(np.mean(ssims))}, images


def to_uint8(image: np.ndarray) -> np.ndarray:
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def depth_to_image(depth: np.ndarray, opacity: np.ndarray, near: float, far: float) -> np.ndarray:
    """Depth [H, W] as a grey picture [H, W, 3] uint8: near is dark, far light, empty white."""
    scaled = np.clip((depth - near) / max(far - near, 1e-9), 0.0, 1.0)
    grey = 0.1 + 0.8 * scaled
    grey = grey * opacity + (1.0 - opacity)
    return to_uint8(np.repeat(grey[..., None], 3, axis=-1))


def orbit_poses(n: int, radius: float, elevation_deg: float = 30.0) -> np.ndarray:
    """n cameras [n, 4, 4] on a circle around the y axis at `elevation_deg`, looking at the origin
    (y up, the camera's -z towards the origin), for turntables."""
    poses = []
    el = math.radians(elevation_deg)
    for k in range(n):
        az = 2.0 * math.pi * k / n
        position = radius * np.array([math.cos(el) * math.sin(az), math.sin(el), math.cos(el) * math.cos(az)])
        back = position / np.linalg.norm(position)  # camera +z points away from the origin
        right = np.cross([0.0, 1.0, 0.0], back)
        right /= np.linalg.norm(right)
        up = np.cross(back, right)
        pose = np.eye(4)
        pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, up, back, position
        poses.append(pose)
    return np.asarray(poses, dtype=np.float32)


def save_radiance_field(path, renderer, config: NerfConfig, metadata: Optional[dict] = None) -> Path:
    """Write the renderer's weights and buffers as safetensors, with its config (and `near`, `far`
    for NeRF) in the header, atomically."""
    from safetensors.torch import save_file

    header = {"inrflow": "radiance-field", "config": json.dumps(config_to_dict(config)),
              "metadata": json.dumps(metadata or {})}
    if isinstance(renderer, NerfRenderer):
        header.update(near=repr(renderer.near), far=repr(renderer.far))
    state = {k: v.detach().contiguous().cpu() for k, v in state_of(renderer).items()}
    return write_atomic(path, lambda tmp: save_file(state, tmp, metadata=header))


def load_radiance_field(path, device: torch.device) -> tuple[Any, NerfConfig, dict]:
    """The renderer saved by `save_radiance_field`, on `device`, with its config and metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        header = f.metadata() or {}
    if header.get("inrflow") != "radiance-field":
        raise ValueError(f"{path}: not a radiance field saved by inrflow")
    config = config_from_dict(NerfConfig, json.loads(header["config"]), f"{path}: config")
    near, far = float(header.get("near", 2.0)), float(header.get("far", 6.0))
    renderer = build_renderer(config, near, far, device)
    load_state(renderer, {k: v.to(device) for k, v in load_file(str(path)).items()})
    for module in renderer.modules().values():
        module.eval()
    return renderer, config, json.loads(header.get("metadata", "{}"))


def _device_of(renderer) -> torch.device:
    module = next(iter(renderer.modules().values()))
    return next(iter(module.parameters())).device


def eval_rays(config: NerfConfig, test: SceneSplit) -> int:
    """How many rays one in-training evaluation renders: its `eval_views` test views' pixels."""
    return len(view_indices(len(test.images), config.eval_views)) * test.intrinsics.width * test.intrinsics.height


@dataclass
class ViewMeasurement:
    """A trained field measured on held-out views (`measure_test_views`).

    psnr, ssim: means over the measured views `indices` (of the split); seconds: the time
    their rendering took. `shown` are the views pictured in test_views.png and depth.png, with
    their renders and depth pictures ([H, W, 3] uint8 each) kept from the measurement.
    """

    psnr: float
    ssim: float
    indices: list[int]
    seconds: float
    shown: list[int]
    renders: list[np.ndarray]
    depths: list[np.ndarray]


def measure_test_views(renderer, test: SceneSplit, views: Optional[int] = None, shown_views: int = 4,
                       chunk: int = 4096, on_view: Optional[Callable[[int, int, float], None]] = None
                       ) -> ViewMeasurement:
    """Render `views` test views spread evenly (None: every one), each once: their mean PSNR and
    SSIM, with the renders and depth pictures of `shown_views` of them kept for the pictures.

    on_view: called with (views done, views in all, seconds so far) after each view.
    """
    indices = list(range(len(test.images))) if views is None else view_indices(len(test.images), views)
    shown = [indices[i] for i in view_indices(len(indices), shown_views)]
    near, far = _depth_range(renderer, test)
    psnrs, ssims, renders, depths = [], [], [], []
    start = time.perf_counter()
    for done, i in enumerate(indices, start=1):
        view = render_view(renderer, test.poses[i], test.intrinsics, chunk)
        psnrs.append(float(psnr(view["rgb"], test.images[i])))
        ssims.append(float(ssim(view["rgb"], test.images[i])))
        if i in shown:
            renders.append(to_uint8(view["rgb"]))
            depths.append(depth_to_image(view["depth"], view["opacity"], near, far))
        if on_view:
            on_view(done, len(indices), time.perf_counter() - start)
    return ViewMeasurement(float(np.mean(psnrs)), float(np.mean(ssims)), indices, time.perf_counter() - start,
                           shown, renders, depths)


def write_test_pictures(measured: ViewMeasurement, test: SceneSplit, folder) -> dict[str, Path]:
    """`test_views.png` (the shown views' renders above their ground truth) and `depth.png` (their
    depth pictures) in `folder`, from what the measurement kept: nothing is rendered again."""
    from .render import image_grid, write_png

    folder = Path(folder)
    columns = len(measured.shown)
    truth = [to_uint8(test.images[i]) for i in measured.shown]
    return {"test_views": write_png(image_grid(measured.renders + truth, columns=columns), folder / "test_views.png"),
            "depth": write_png(image_grid(measured.depths, columns=columns), folder / "depth.png")}


MIN_PICTURE_SECONDS = 30.0
PICTURE_SHARE = 0.1


def picture_budget(pictures: NerfPicturesConfig, train_seconds: float) -> float:
    """The turntable's time budget: `pictures.seconds`, else PICTURE_SHARE (a tenth) of the
    training time, at least MIN_PICTURE_SECONDS."""
    if pictures.seconds is not None:
        return float(pictures.seconds)
    return max(MIN_PICTURE_SECONDS, PICTURE_SHARE * float(train_seconds))


def frames_within_budget(frames: int, seconds_per_frame: float, budget: Optional[float]) -> int:
    """How many of `frames` turntable frames fit in `budget` seconds at `seconds_per_frame` each
    (at least 1, the one already rendered when this is asked; None: no budget)."""
    if budget is None or seconds_per_frame <= 0:
        return frames
    return max(1, min(frames, int(budget // seconds_per_frame)))


def measured_view_count(pictures: NerfPicturesConfig, test: SceneSplit) -> int:
    """How many views of `test` the measurement renders: `pictures.test_views`, at most all."""
    return len(test.images) if pictures.test_views is None else min(pictures.test_views, len(test.images))


def seconds_after_training(seconds_per_ray: float, test: SceneSplit, pictures: NerfPicturesConfig,
                           budget: float) -> dict[str, float]:
    """What measuring and picturing will take at `seconds_per_ray` (from an in-training evaluation):
    {"measure": the measured views' pixels x seconds_per_ray, "turntable": its frames' pixels x
    seconds_per_ray, at most `budget`}."""
    count = measured_view_count(pictures, test)
    small = test.intrinsics.scaled_to(pictures.turntable_size)
    turntable = pictures.turntable_frames * small.width * small.height * seconds_per_ray
    return {"measure": count * test.intrinsics.width * test.intrinsics.height * seconds_per_ray,
            "turntable": min(turntable, budget)}


@dataclass
class Turntable:
    """A written turntable: its file (None without frames), frames written and asked for, the
    frame size (width, height) and the seconds it took."""

    path: Optional[Path]
    frames: int
    requested: int
    size: tuple[int, int]
    seconds: float


def render_turntable(renderer, test: SceneSplit, path, frames: int, size: int, budget: Optional[float],
                     chunk: int = 4096, on_frame: Optional[Callable[[int, int, float], None]] = None) -> Turntable:
    """`frames` novel views on a circle at the test cameras' mean distance, 30 degrees up, each
    `size` pixels on its longer side (`Intrinsics.scaled_to`), as a looping GIF at `path`.

    The first frame is timed; when all `frames` would not fit in `budget` seconds, the GIF gets
    as many as fit (`frames_within_budget`), still spread over the whole circle (every count
    of frames starts at the same view). on_frame: called with (frames done, frames in all,
    seconds so far) after each frame.
    """
    from .render import write_gif

    intrinsics = test.intrinsics.scaled_to(size)
    if frames <= 0:
        return Turntable(None, 0, 0, (intrinsics.width, intrinsics.height), 0.0)
    radius = float(np.mean(np.linalg.norm(test.poses[:, :3, 3], axis=1)))
    start = time.perf_counter()
    images = [to_uint8(render_view(renderer, orbit_poses(frames, radius)[0], intrinsics, chunk)["rgb"])]
    count = frames_within_budget(frames, time.perf_counter() - start, budget)
    if on_frame:
        on_frame(1, count, time.perf_counter() - start)
    for done, pose in enumerate(orbit_poses(count, radius)[1:], start=2):
        images.append(to_uint8(render_view(renderer, pose, intrinsics, chunk)["rgb"]))
        if on_frame:
            on_frame(done, count, time.perf_counter() - start)
    written = write_gif(images, path)
    return Turntable(written, count, frames, (intrinsics.width, intrinsics.height), time.perf_counter() - start)


def _depth_range(renderer, split: SceneSplit) -> tuple[float, float]:
    """Distances to show as dark..light in depth pictures: the scene box seen from the cameras."""
    distance = float(np.mean(np.linalg.norm(split.poses[:, :3, 3], axis=1)))
    reach = renderer.field.bound if isinstance(renderer, NgpRenderer) else 1.0
    return max(distance - reach * math.sqrt(3.0), 0.0), distance + reach * math.sqrt(3.0)
