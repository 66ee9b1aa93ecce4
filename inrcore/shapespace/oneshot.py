"""Shape spaces here and now, for the command line (`inr deepsdf`, `inr occnet`): files in, results out,
no pipeline. Each function reads mesh files, calls the shape-space library and returns meshes in the
input's coordinates with their metrics (`inrcore.geometry.metrics`, lengths over the input's longest side).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import trimesh

from inrcore.geometry.meshes import Normalisation
from inrcore.geometry.metrics import compare_meshes
from inrcore.shapespace.autodecoder import AutoDecoderResult, TargetSamples, train_auto_decoder
from inrcore.shapespace.samples import ShapeSpaceSamples, check_samples, load_normalised_mesh, sample_shape_space
from inrcore.shapespace.settings import ShapeSpaceConfig
from inrcore.shapespace.space import ShapeSpace, fit_members, mesh_field, start_ids


METRIC_KEYS = ("chamfer_l1", "fscore", "normal_consistency", "hausdorff")


@dataclass(eq=False)
class Sampled:
    """A mesh file's normalised mesh, its normalisation and its samples."""

    path: str
    mesh: trimesh.Trimesh
    normalisation: Normalisation
    samples: ShapeSpaceSamples


def sample_file(path: str, config: ShapeSpaceConfig) -> Sampled:
    """Read, normalise and sample one mesh file (ShapeError naming it when it cannot be used)."""
    mesh, normalisation = load_normalised_mesh(path, config.sampling.extent)
    samples = sample_shape_space(mesh, config.sampling)
    check_samples(samples, path)
    return Sampled(str(path), mesh, normalisation, samples)


def train_on_files(shapes: Sequence[Sampled], config: ShapeSpaceConfig, device: torch.device,
                   on_log: Optional[Callable[[dict], None]] = None) -> AutoDecoderResult:
    """Train the auto-decoder on the files' samples, its size chosen for `device`
    (`AutoDecoderConfig.for_device`)."""
    return train_auto_decoder([(s.samples.points, s.samples.sdf) for s in shapes],
                              config.training.for_device(device.type), device, on_log)


def in_input_frame(mesh: trimesh.Trimesh, normalisation: Normalisation) -> trimesh.Trimesh:
    return trimesh.Trimesh(normalisation.invert(np.asarray(mesh.vertices, np.float64)), np.asarray(mesh.faces),
                           process=False)


def surface_metrics(mesh: trimesh.Trimesh, reference: trimesh.Trimesh, config: ShapeSpaceConfig) -> dict:
    if len(mesh.faces) == 0:
        return {"empty": True}
    values = compare_meshes(mesh, reference, config.metrics)
    return {k: values[k] for k in METRIC_KEYS}


def reconstruct(space: ShapeSpace, reference: Optional[trimesh.Trimesh], targets: TargetSamples,
                config: ShapeSpaceConfig, device: torch.device) -> tuple[trimesh.Trimesh, dict]:
    """Fit a code to `targets` (a shape's samples, or a scan's), mesh the member and measure it against
    `reference` (the whole shape in the normalised frame; no surface figures when None): (mesh in the
    normalised frame, metrics with the fit's loss and seconds)."""
    fit = fit_members(space, [targets], config.fitting, device)
    mesh, stats = mesh_field(*space.member_of_code(fit.codes[0]), config.mesh, device)
    figures = surface_metrics(mesh, reference, config) if reference is not None else {}
    starts = start_ids(space, fit)
    metrics = {**figures, "fit_loss": fit.losses[0], "fit_seconds": fit.seconds,
               **({"fit_start": starts[0]} if starts else {}), "mesh_evaluations": int(stats.get("evaluations", 0))}
    return mesh, metrics


def scan_of(mesh: trimesh.Trimesh, name: str, config: ShapeSpaceConfig, noise: float, seed: int):
    """One depth scan of a normalised mesh from a seeded view: (scan, the samples made from it)."""
    from inrcore.settings import config_replace
    from inrcore.shapespace.scans import depth_scan

    scan_config = config_replace(config.scan, {"noise": noise}, "scan")
    scan = depth_scan(mesh, scan_config, seed=seed, name=name)
    return scan, scan_targets(scan, config, seed)


def scan_targets(scan, config: ShapeSpaceConfig, seed: int) -> TargetSamples:
    """The code-fitting targets of a depth scan (`inrcore.shapespace.scans.scan_samples`)."""
    from inrcore.shapespace.scans import scan_samples

    samples = scan_samples(scan, config.scan, seed=seed)
    return TargetSamples(samples.points, samples.sdf, samples.exact)
