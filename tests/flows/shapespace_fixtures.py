"""A tiny shape collection (spheres and boxes made here) and tiny shape-space settings, for tests."""

import trimesh
import yaml


TINY = {
    "sampling": {"n_samples": 4000, "n_surface": 2000, "n_occupancy": 4000},
    "training": {"epochs": 200, "log_every": 50, "decoder": {"latent": 8, "width": 32, "layers": 4, "skip_at": 2}},
    "fitting": {"steps": 100, "samples": 1000},
    "occnet": {"steps": 40, "hidden": 16, "code": 16, "decoder_hidden": 16, "blocks": 1, "batch": 4, "n_query": 256,
               "scale_jitter": 0.1, "warp_jitter": 0.1, "choose_threshold": True, "threshold_shapes": 3},
    "mesh": {"start": 16, "levels": 1},
    "noise_levels": [0.0, 0.05],
    "metrics": {"n_points": 2000},
    "scan": {"resolution": 32},
}


def tiny_collection(folder, name="tiny", extra_shapes=()):
    """Spheres of radius 0.3..0.6 (0.5 held out) and two boxes, plus `extra_shapes` entries; the manifest path."""
    (folder / "meshes").mkdir(parents=True, exist_ok=True)
    shapes = []
    for i, r in enumerate((0.3, 0.4, 0.5, 0.6)):
        trimesh.creation.icosphere(3, radius=r).export(folder / "meshes" / f"s{i}.obj")
        shapes.append({"id": f"s{i}", "path": f"meshes/s{i}.obj", "split": "test" if i == 2 else "train"})
    for i, e in enumerate((0.5, 0.8)):
        trimesh.creation.box((e, 0.6, 0.7)).export(folder / "meshes" / f"b{i}.obj")
        shapes.append({"id": f"b{i}", "path": f"meshes/b{i}.obj", "split": "train"})
    shapes += list(extra_shapes)
    path = folder / "manifest.yaml"
    path.write_text(yaml.safe_dump({"name": name, "shapes": shapes, "shapespace": TINY}))
    return path
