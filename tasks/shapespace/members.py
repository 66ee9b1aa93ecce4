"""Using trained shape spaces on held-out shapes: codes fitted to their samples or to partial scans,
members meshed and measured, Occupancy Network reconstructions, and a latent interpolation strip.

Codes are fitted for all held-out shapes of one mode in one task (they are fitted together) and
stored in `shapespace/codes/<mode>`; meshing and measuring are one task per shape and mode. Meshes
are written in the input's own coordinates; metrics are those of `inrcore.geometry.metrics` in the
normalised frame (lengths over the reference's longest side, so the frame does not change them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import trimesh
from prefect import task

from inrcore.device import resolve_device
from inrcore.geometry.images import side_by_side, write_png
from inrcore.geometry.meshes import Normalisation, load_mesh
from inrcore.geometry.metrics import compare_meshes
from inrcore.geometry.render import render_mesh
from inrcore.geometry.settings import MetricsConfig
from inrcore.settings import config_to_dict, fingerprint
from inrcore.shapespace.autodecoder import TargetSamples
from inrcore.shapespace.settings import CodeFitConfig, ScanConfig, ShapeMeshConfig

from .. import locations
from ..options import retry_unless_bad_input
from ..results import StageResult
from ..store import finished_attrs, open_store, read_arrays, write_group
from .samples import read_shape_samples


@dataclass(frozen=True, kw_only=True)
class FittedCodes(StageResult):
    """Codes of held-out shapes in the store (`path`), made under `fingerprint`."""

    path: str
    fingerprint: str
    shape_ids: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class MeasuredMember(StageResult):
    """One held-out shape's reconstruction in one mode: its mesh file, picture and metrics."""

    shape_id: str
    mode: str
    mesh_path: str
    image: str
    metrics: dict


def mode_name(mode: str, noise: float) -> str:
    """"reconstruct", or "complete-<α>" for completion at depth noise α."""
    return mode if mode == "reconstruct" else f"complete-{noise:g}"


def reference_mesh(source: str, normalisation: Normalisation) -> trimesh.Trimesh:
    """The input mesh (a path or URL) moved into the normalised frame by the stored normalisation."""
    with locations.input_file(source) as local:
        mesh = load_mesh(local)
    return trimesh.Trimesh(normalisation.apply(np.asarray(mesh.vertices, np.float64)), np.asarray(mesh.faces),
                           process=False)


def scan_targets(source: str, normalisation: Normalisation, scan: ScanConfig, seed: int) -> TargetSamples:
    """A depth scan of the shape from a seeded view, as samples to fit a code to."""
    from inrcore.shapespace.scans import depth_scan, scan_samples

    taken = depth_scan(reference_mesh(source, normalisation), scan, seed=seed, name=source)
    samples = scan_samples(taken, scan, seed=seed)
    return TargetSamples(samples.points, samples.sdf, samples.exact)


@task(name="deepsdf-fit-codes", retries=1, retry_condition_fn=retry_unless_bad_input)
def fit_shape_codes(store_url: str, space_path: str, space_key: str, shape_ids: list[str], sources: list[str],
                    mode: str, noise: float, fit: CodeFitConfig, scan: ScanConfig, device_name: str) -> FittedCodes:
    """Fit codes of the held-out shapes with the decoder frozen: to their stored samples ("reconstruct")
    or to one depth scan each with noise α ("complete"; scan seed = scan.seed + the shape's index)."""
    from inrcore.shapespace.space import fit_members, start_ids

    start = time.perf_counter()
    name = mode_name(mode, noise)
    scan = ScanConfig(**{**config_to_dict(scan), "noise": noise})
    key = fingerprint("codes", space_key, shape_ids, mode, fit, scan if mode == "complete" else None)
    root = open_store(store_url)
    path = f"shapespace/codes/{name}"
    if finished_attrs(root, path, key) is not None:
        return FittedCodes(path=path, fingerprint=key, shape_ids=tuple(shape_ids), reused=True,
                           seconds=time.perf_counter() - start)
    targets = []
    for index, (shape_id, source) in enumerate(zip(shape_ids, sources)):
        samples, normalisation = read_shape_samples(store_url, shape_id)
        if mode == "reconstruct":
            targets.append(TargetSamples(samples.points, samples.sdf))
        else:
            targets.append(scan_targets(source, normalisation, scan, scan.seed + index))
    space = load_space(space_path)
    fitted = fit_members(space, targets, fit, resolve_device(device_name))
    write_group(root, path, key, {"codes": fitted.codes.numpy(), "losses": np.asarray(fitted.losses, np.float32)},
                {"shape_ids": list(shape_ids), "mode": mode, "noise": noise, "fit_seconds": fitted.seconds,
                 "targets": [int(len(t.points)) for t in targets], "starts": start_ids(space, fitted)})
    return FittedCodes(path=path, fingerprint=key, shape_ids=tuple(shape_ids), seconds=time.perf_counter() - start)


def write_mesh_and_picture(mesh: trimesh.Trimesh, normalisation: Normalisation, mesh_path: str, image: str) -> None:
    """The mesh in the input's coordinates and its picture (normalised frame), each written whole at its
    path or URL."""
    original = trimesh.Trimesh(normalisation.invert(np.asarray(mesh.vertices, np.float64)), np.asarray(mesh.faces),
                               process=False)
    locations.write_file(mesh_path, original.export)
    picture = render_mesh(mesh)
    locations.write_file(image, lambda tmp: write_png(picture, tmp))


def load_space(space_path: str):
    """The shape space saved at a path or URL."""
    from inrcore.shapespace.space import load_shape_space

    with locations.local_copy(space_path) as local:
        return load_shape_space(local)


def measured(mesh: trimesh.Trimesh, reference: trimesh.Trimesh, metrics: MetricsConfig) -> dict:
    if len(mesh.faces) == 0:
        return {"empty": True}
    values = compare_meshes(mesh, reference, metrics)
    return {k: values[k] for k in ("chamfer_l1", "fscore", "normal_consistency", "hausdorff")}


@task(name="deepsdf-member", retries=1, retry_condition_fn=retry_unless_bad_input)
def measure_member(shape_id: str, source: str, store_url: str, space_path: str, codes: FittedCodes, mesh: ShapeMeshConfig,
                   metrics: MetricsConfig, out_dir: str, device_name: str) -> MeasuredMember:
    """Mesh the member of a fitted code, write it and its picture, and measure it against the input."""
    from inrcore.shapespace.space import mesh_field

    start = time.perf_counter()
    mode = codes.path.rsplit("/", 1)[1]
    root, index = open_store(store_url, mode="r"), codes.shape_ids.index(shape_id)
    code = read_arrays(root, codes.path, ("codes",))[0][index]
    # the training shape each code started at (init "nearest"), read as every finished group is
    starts = (finished_attrs(root, codes.path, codes.fingerprint) or {}).get("starts")
    import torch

    space = load_space(space_path)
    surface, _ = mesh_field(*space.member_of_code(torch.from_numpy(code)), mesh, resolve_device(device_name))
    _, normalisation = read_shape_samples(store_url, shape_id)
    values = {**measured(surface, reference_mesh(source, normalisation), metrics),
              **({"fit_start": starts[index]} if starts else {})}
    mesh_path, image = (locations.join(out_dir, "shapespace", mode, f"{shape_id}.{suffix}")
                        for suffix in ("ply", "png"))
    if len(surface.faces):
        write_mesh_and_picture(surface, normalisation, mesh_path, image)
    return MeasuredMember(shape_id=shape_id, mode=mode, mesh_path=mesh_path, image=image, metrics=values,
                          seconds=time.perf_counter() - start)


@task(name="occnet-member", retries=1, retry_condition_fn=retry_unless_bad_input)
def measure_occnet(shape_id: str, source: str, store_url: str, occnet_path: str, seed: int, mesh: ShapeMeshConfig,
                   metrics: MetricsConfig, out_dir: str, device_name: str) -> MeasuredMember:
    """The Occupancy Network's shape from a noisy cloud of the held-out shape: IoU at its occupancy
    samples, the MISE mesh (written with its picture) and its surface metrics."""
    from inrcore.shapespace.occnet import load_occnet, occnet_mesh, occupancy_iou
    from inrcore.shapespace.occnet_training import noisy_cloud

    start = time.perf_counter()
    with locations.local_copy(occnet_path) as local:
        params, config, _ = load_occnet(local)
    samples, normalisation = read_shape_samples(store_url, shape_id)
    cloud = noisy_cloud(samples.surface, config.n_points, config.noise, np.random.default_rng(seed))
    device = resolve_device(device_name)
    iou = occupancy_iou(params, config, cloud, samples.occupancy_points, samples.inside, device)
    surface, _ = occnet_mesh(params, config, cloud, device, start=mesh.start, levels=mesh.levels, bound=mesh.bound)
    values = {**measured(surface, reference_mesh(source, normalisation), metrics), "iou": iou}
    mesh_path, image = (locations.join(out_dir, "shapespace", "occnet", f"{shape_id}.{suffix}")
                        for suffix in ("ply", "png"))
    if len(surface.faces):
        write_mesh_and_picture(surface, normalisation, mesh_path, image)
    return MeasuredMember(shape_id=shape_id, mode="occnet", mesh_path=mesh_path, image=image, metrics=values,
                          seconds=time.perf_counter() - start)


@task(name="deepsdf-interpolate", retries=1, retry_condition_fn=retry_unless_bad_input)
def interpolate_shapes(space_path: str, first: str, second: str, steps: int, mesh: ShapeMeshConfig, out_dir: str,
                       device_name: str) -> str:
    """Meshes on the line between two training shapes' codes (`interpolation/<a>--<b>-<k>.ply`, normalised
    frame) and their pictures side by side (`interpolation/<a>--<b>.png`); returns the picture's path."""
    from inrcore.shapespace.space import interpolation_meshes

    meshes = interpolation_meshes(load_space(space_path), first, second, steps, mesh, resolve_device(device_name))
    out = locations.join(out_dir, "shapespace", "interpolation")
    for k, m in enumerate(meshes):
        locations.write_file(locations.join(out, f"{first}--{second}-{k}.ply"), m.export)
    strip = side_by_side([render_mesh(m) for m in meshes if len(m.faces)])
    return locations.write_file(locations.join(out, f"{first}--{second}.png"), lambda tmp: write_png(strip, tmp))


@task(name="shapespace-held-out-log", retries=1, retry_condition_fn=retry_unless_bad_input)
def log_held_out(tracking_uri: str, run_id: str, aggregate: dict, images: list[str], out_dir: str,
                 columns: int = 6) -> str:
    """Log the held-out figures to the training run ("test/<mode>/<metric>_<mean|median>"), and the held-out
    shapes' pictures (one row per mode, in the order given) as one grid `<out>/shapespace/grid.png` among its
    artifacts; returns the grid's path ("" without pictures)."""
    from PIL import Image

    from inrcore.geometry.images import image_grid

    from .. import registry

    registry.log_metrics(tracking_uri, run_id, {f"test/{k.replace('@', '_')}": v for k, v in aggregate.items()})
    pictures = []
    for picture in images:
        try:  # one request each; a missing picture is left out of the grid
            with locations.local_copy(picture) as local:
                pictures.append(np.asarray(Image.open(local).convert("RGB")))
        except FileNotFoundError:
            continue
    path = locations.join(out_dir, "shapespace", "grid.png")
    if not pictures:
        return ""
    grid = image_grid(pictures, columns=columns)
    locations.write_file(path, lambda tmp: write_png(grid, tmp))
    registry.log_artifact(tracking_uri, run_id, path, "pictures")
    return path
