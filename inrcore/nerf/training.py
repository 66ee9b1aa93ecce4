"""Training a radiance field on batches of rays, measuring it on held-out views, saving it.

`train_radiance_field` runs the optimisation loop: each step draws a batch of rays
(origins, unit directions, colours) from any iterator of numpy arrays (see
`inrcore.nerf.raybatches`), renders it, and minimises the squared colour error (for NeRF the
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

from inrcore.errors import ShapeError
from inrcore.files import read_safetensors, write_atomic, write_safetensors
from inrcore.nerf.models import NerfRenderer, NgpRenderer, build_renderer
from inrcore.nerf.pictures import evaluate_views, view_indices
from inrcore.nerf.scenes import SceneSplit
from inrcore.nerf.settings import NerfConfig
from inrcore.settings import budget_progress, config_from_dict, config_to_dict, fingerprint


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


def _read_checkpoint(path: str, device: torch.device) -> Optional[dict]:
    """A checkpoint written by `train_nerf`, or None when there is none or it cannot be read as one. Read
    with torch's weights-only loader (tensors, numbers, strings and containers: nothing pickled is
    executed), so a checkpoint from a shared store cannot run code; an unreadable one is trained over."""
    if not Path(path).exists():
        return None
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
    except Exception:  # truncated, foreign, or holding objects the weights-only loader refuses
        return None
    return saved if isinstance(saved, dict) else None


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
    on_checkpoint: Optional[Callable[[str], None]] = None,
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
        on_checkpoint: called with `checkpoint_path` after each checkpoint is written whole (e.g. to
            copy it to where a later run on another machine finds it).
        data_key: identifies the training data (e.g. the rays' fingerprint) for resuming.
    """
    renderer = build_renderer(config, near, far, device)
    optimizer = make_optimizer(renderer, config)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    key = checkpoint_key(config, data_key)
    step, elapsed = 0, 0.0
    saved = _read_checkpoint(checkpoint_path, device) if checkpoint_path else None
    if saved is not None:
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
        if on_checkpoint is not None:
            on_checkpoint(checkpoint_path)

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


def save_radiance_field(path, renderer, config: NerfConfig, metadata: Optional[dict] = None) -> Path:
    """Write the renderer's weights and buffers as safetensors, with its config (and `near`, `far`
    for NeRF) in the header, atomically."""
    header = {"inrflow": "radiance-field", "config": json.dumps(config_to_dict(config)),
              "metadata": json.dumps(metadata or {})}
    if isinstance(renderer, NerfRenderer):
        header.update(near=repr(renderer.near), far=repr(renderer.far))
    return write_safetensors(path, state_of(renderer), header)


def load_radiance_field(path, device: torch.device) -> tuple[Any, NerfConfig, dict]:
    """The renderer saved by `save_radiance_field`, on `device`, with its config and metadata (ShapeError,
    a ValueError, naming the file when it is missing, unreadable or no radiance field)."""
    state, header = read_safetensors(path, "radiance field file")
    if header.get("inrflow") != "radiance-field":
        raise ShapeError(path, "not a radiance field saved by inrflow")
    config = config_from_dict(NerfConfig, json.loads(header["config"]), f"{path}: config")
    near, far = float(header.get("near", 2.0)), float(header.get("far", 6.0))
    renderer = build_renderer(config, near, far, device)
    load_state(renderer, {k: v.to(device) for k, v in state.items()})
    for module in renderer.modules().values():
        module.eval()
    return renderer, config, json.loads(header.get("metadata", "{}"))


