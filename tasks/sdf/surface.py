"""Surface extraction and measurement: stored grid -> mesh file, metrics, renders."""

from __future__ import annotations

import time
from dataclasses import dataclass

from prefect import task

from inrcore.geometry.images import write_png
from inrcore.geometry.marching import marching_cubes_blocks
from inrcore.geometry.meshes import Normalisation, load_mesh
from inrcore.geometry.metrics import METRICS_VERSION
from inrcore.geometry.render import render_mesh
from inrcore.geometry.settings import MetricsConfig
from inrcore.sdf.fitshape import EmptySurfaceError, load_reference, measure_reconstruction, render_reference
from inrcore.settings import config_to_dict, fingerprint

from .. import locations, registry
from ..results import StageResult
from ..store import open_store


@dataclass(frozen=True, kw_only=True)
class MeasuredSurface(StageResult):
    """A shape's reconstructed surface: the mesh file, its metrics against the input
    ({name: value}, `inrcore.geometry.metrics`), its pictures ({"input", "reconstruction"}: PNG
    paths or URLs) and its size."""

    mesh_path: str
    metrics: dict
    images: dict
    vertices: int
    faces: int


@task(name="extract-surface")
def extract_surface(shape_id: str, source: str, normalisation: dict, store_url: str, field_fingerprint: str,
                    out_dir: str, metrics: MetricsConfig, tracking_uri: str, run_id: str) -> MeasuredSurface:
    """Marching cubes on the stored grid, metrics against the input shape, renders of both.

    The input is a mesh or a point cloud (`inrcore.sdf.fitshape.load_reference`, moved by the
    stored normalisation); a cloud is measured with `compare_mesh_to_points` and pictured
    as splatted points.

    Numbers before pictures: writes `<out_dir>/meshes/<id>.ply` and the record
    `<out_dir>/shapes/<id>.json` and logs the metrics to the shape's MLflow run as soon as
    the surface is measured, then draws `<out_dir>/renders/<id>-{input,reconstruction}.png`
    (a reused record whose pictures are missing gets only its pictures drawn). Metrics go to
    the run (as "eval/<name>": `inrcore.geometry.metrics.METRIC_NAMES` and the point-to-point
    POINT_METRIC_NAMES). Reuses a record made from the same grid, metric settings and
    metric definitions (`METRICS_VERSION`).

    """
    start = time.perf_counter()
    config = metrics
    key = fingerprint("surface", field_fingerprint, config, METRICS_VERSION)
    record_path = locations.join(out_dir, "shapes", f"{shape_id}.json")
    mesh_path = locations.join(out_dir, "meshes", f"{shape_id}.ply")
    images = {"input": locations.join(out_dir, "renders", f"{shape_id}-input.png"),
              "reconstruction": locations.join(out_dir, "renders", f"{shape_id}-reconstruction.png")}
    record = locations.read_json(record_path)
    if record and record.get("fingerprint") == key and locations.is_file(mesh_path):
        pictured = all(locations.is_file(path) for path in images.values())
        if not pictured:  # a run stopped while drawing them
            with locations.local_copy(mesh_path) as mesh_file:
                mesh = load_mesh(mesh_file)
            draw_pictures(mesh, reference_of(source, normalisation), images)
        return MeasuredSurface(**record["result"], reused=pictured, seconds=time.perf_counter() - start)

    group = open_store(store_url, mode="r")[f"fields/{shape_id}"]
    sdf = group["sdf"]
    spacing = float(group.attrs["spacing"])
    mesh = marching_cubes_blocks(lambda b: sdf[b], sdf.shape, int(sdf.chunks[0]), spacing,
                                 tuple(group.attrs["bounds_min"]))
    if len(mesh.faces) == 0:
        raise EmptySurfaceError(f"{shape_id}: the fitted field has no zero level set inside the grid")
    reference = reference_of(source, normalisation)
    values = measure_reconstruction(mesh, reference, config)

    locations.write_file(mesh_path, mesh.export)
    result = {"mesh_path": mesh_path, "metrics": values, "images": images,
              "vertices": int(len(mesh.vertices)), "faces": int(len(mesh.faces))}
    locations.write_json(record_path, {"fingerprint": key, "metrics_config": config_to_dict(config), "result": result})
    registry.log_metrics(tracking_uri, run_id, {f"eval/{k}": v for k, v in values.items()})

    draw_pictures(mesh, reference, images)
    registry.log_artifact(tracking_uri, run_id, images["reconstruction"], "renders")
    return MeasuredSurface(**result, seconds=time.perf_counter() - start)


def reference_of(source: str, normalisation: dict):
    """The input shape (a path or URL) moved by the stored normalisation."""
    with locations.input_file(source) as local:
        return load_reference(local, Normalisation.from_dict(normalisation))


def draw_pictures(mesh, reference, images: dict) -> None:
    """Picture the input (mesh or points) into images["input"] and the reconstruction into
    images["reconstruction"] (PNG paths)."""
    for role, image in (("input", render_reference(reference)), ("reconstruction", render_mesh(mesh))):
        locations.write_file(images[role], lambda tmp, image=image: write_png(image, tmp))
