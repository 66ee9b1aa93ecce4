"""Benchmark: learned shape spaces (issue 16), measured with the library's functions directly.

Stages (each timed; the result file is rewritten after each, so a failed run keeps what it measured):

  collection     `inrcore.shapespace.procedural.write_collection` (families chair, table, mug;
                 `--per-family` each, seed `--seed`, a seeded fifth of each family held out) into
                 `--work`; every shape normalised (longest side spanning [-0.9, 0.9]) and sampled
                 (`sample_shape_space`, cached as .npz under `--work`, so re-runs skip it).
  train          the auto-decoder (`train_auto_decoder`, the library's AutoDecoderConfig; `--paper`:
                 the authors' 8 x 512 decoder) on the train split for `--seconds` of wall time.
  reconstruct    codes of all test shapes fitted in one `fit_codes` call (`--fit-steps`, the authors'
                 800; each code started at the training code of lowest objective on the shape's samples,
                 its id in the row's "start", or with `--fit-init random` the authors' N(0, 0.01^2)); each
                 member (`member_network`) meshed by MISE (`--mesher mise`: `--mesh-start`^3 cells refined
                 `--mesh-levels` times; `dense`: marching cubes on the same final lattice) and measured
                 against its normalised test mesh. Single run (seed `--seed`) and best of
                 `--best-of` K runs (seeds seed..seed+K-1; per shape the code of lowest fitting objective,
                 clamped L1 + code penalty, evaluated on all the shape's samples) reported separately.
  completion     per noise level alpha: one depth scan per test shape (`depth_scan`, view seed
                 seed + index of the shape, so every alpha sees the same view), `scan_samples`, codes
                 fitted in one call, meshed and measured against the whole test mesh.
  occnet         the Occupancy Network trained on the train split for `--occnet-seconds`; per test shape
                 a noisy 300-point cloud (`noisy_cloud`, seed seed + index), IoU on the shape's occupancy
                 points (uniform in the box padded by 0.1) and the MISE mesh at the network's threshold
                 (0.2, or the one `occnet.choose_threshold` chose on training shapes), measured. With
                 `occnet.average_decay` (the weights' moving average) also `last_weights`: the test IoU
                 of the last weights from the same clouds, their statistics and threshold set alike.
  siren          per-shape SIREN fits (`inr fit --method siren`'s settings, `fit_sdf`) of the test shapes,
                 each for (auto-decoder training seconds) / (number of test shapes): together they get
                 the time the auto-decoder trained. Meshed by the same mesher as the members.
  shared         codes fitted to datasets/meshes/*.obj (the project's shared meshes): OUT OF
                 DISTRIBUTION for a space of chairs, tables and mugs; reported as such.

Figures per mesh (A the reconstruction, B the normalised reference mesh):
  chamfer_l1, fscore, normal_consistency   `inrcore.geometry.metrics.compare_meshes` with `--metric-points`
      samples per mesh: exact point-to-surface, distances divided by B's longest bounding-box side
      ("unit-box normalisation"), F-score at 1% of B's diagonal.
  deepsdf_chamfer   DeepSDF's own figure: both meshes moved by B's bounding sphere (centre c = the centre of
      B's bounding box, radius R = the largest |v - c| over B's vertices; p -> (p - c) / R), `--metric-points`
      area-weighted samples on each (seeded), mean squared nearest-sample distance A->B plus B->A
      (scipy cKDTree, point to point), x 10^3. The authors measure in ShapeNet's own frame after
      undoing their unit-sphere normalisation; figures scale with the square of the frame's size.
  iou   occupancy only.
Summaries: mean over the shapes that gave a surface; median over all shapes, a failed one (no surface)
counted as the worst value (chamfer inf, fscore / nc / iou 0); `failed` counts them.

The trained auto-decoder and Occupancy Network are saved under `--work/models` (torch.save, keyed by their
settings and training shapes); `--reuse-models` loads them instead of training, to run the later stages
again without the 35 minutes of training. `--occnet-network FILE.pt` evaluates one such saved Occupancy
Network whatever its key, with the evaluation settings this run names in --occnet-set
(`occnet.mirror_views`, `occnet.refine_*`; its threshold chosen again under them when it chose one), and
with `occnet.statistics_batches` named, its batch-norm statistics recomputed on the training shapes as a
training with that setting ends: inference settings tried on one trained network.

Cost: code fitting dominates. Each `fit_codes` call (3 for best of 3, one per noise level, one for the
shared meshes) runs `--fit-steps` steps of (test shapes x `--fit-samples`) decoder evaluations with their
gradients: 20 shapes x 8,000 samples took 4.6 s per step on one busy core of this project's CPU
machine (~1 h per call of 800 steps); `--fit-samples 2000` took 0.7 s per step.

Targets (issue 16): reconstruction median chamfer_l1 <= 0.01; completion median at alpha = 0 <= 0.02 and
at alpha = 0.05 <= 1.5 x that; Occupancy Network median IoU >= 0.8; auto-decoder training <= 1800 s.

    OMP_NUM_THREADS=2 python benchmarks/shapespace.py --threads 2 --out benchmarks/results/shapespace.json
    OMP_NUM_THREADS=1 python benchmarks/shapespace.py --quick --threads 1 --out /tmp/shapespace_quick.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import cpu_model, metric_figures, write_result  # noqa: E402


ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED = ("bunny", "fandisk", "spot", "rocker-arm")
STAGES = ("train", "reconstruct", "completion", "occnet", "siren", "shared")
FIGURES = ("chamfer_l1", "fscore", "normal_consistency", "deepsdf_chamfer")
WORST = {"chamfer_l1": math.inf, "deepsdf_chamfer": math.inf, "fscore": 0.0, "normal_consistency": 0.0, "iou": 0.0}
# Option defaults of the real run and of --quick (a smoke run of well under a minute).
FULL = dict(per_family=34, seconds=1500.0, fit_steps=800, fit_samples=8000, best_of=3,
            noise_levels="0,0.01,0.02,0.03,0.05", occnet_seconds=600.0, mesh_start=32, mesh_levels=2,
            metric_points=30_000, shared=",".join(SHARED))
QUICK = dict(per_family=3, seconds=6.0, fit_steps=30, fit_samples=1000, best_of=2, noise_levels="0,0.05",
             occnet_seconds=4.0, mesh_start=16, mesh_levels=1, metric_points=2000, shared="fandisk")
QUICK_SETTINGS = {"sampling": {"n_samples": 4000, "n_surface": 2000, "n_occupancy": 4000},
                  "training": {"samples_per_shape": 512},
                  "scan": {"resolution": 32},
                  "occnet": {"batch": 4, "n_query": 512, "hidden": 32, "code": 32, "decoder_hidden": 32},
                  "siren_sampling": {"n_surface": 2000, "n_near": 2000, "n_uniform": 1000}}


def settings_of(args) -> dict:
    """The library settings of this run, built from the defaults, --quick and the options."""
    from inrcore.geometry.settings import SamplingConfig
    from inrcore.settings import config_replace
    from inrcore.shapespace import settings as ss

    quick = QUICK_SETTINGS if args.quick else {}
    decoder = ss.DecoderConfig.paper() if args.paper else ss.DecoderConfig()
    occnet = ss.OccNetConfig.paper() if args.paper else ss.OccNetConfig()
    epochs = 10**9  # the time budget stops training
    return {
        "generator": ss.GeneratorConfig(families=tuple(args.families.split(",")), per_family=args.per_family,
                                        seed=args.seed),
        "sampling": config_replace(ss.DeepSdfSamplingConfig(), {"seed": args.seed, **quick.get("sampling", {})}),
        "training": config_replace(ss.AutoDecoderConfig(decoder=decoder), {
            "epochs": epochs, "seconds": args.seconds, "seed": args.seed, **quick.get("training", {}),
            **{k: v for k, v in (("lr_decoder", args.lr_decoder), ("lr_every", args.lr_every),
                                 ("lr_codes", args.lr_codes), ("shapes_per_batch", args.shapes_per_batch),
                                 ("samples_per_shape", args.samples_per_shape)) if v is not None}}),
        "fitting": config_replace(ss.CodeFitConfig(), {"steps": args.fit_steps, "samples": args.fit_samples,
                                                       **({"init": args.fit_init} if args.fit_init else {})}),
        "scan": config_replace(ss.ScanConfig(), quick.get("scan", {})),
        "occnet": config_replace(occnet, {"steps": epochs, "seconds": args.occnet_seconds, "seed": args.seed,
                                          **quick.get("occnet", {}),
                                          **({"lr": args.occnet_lr} if args.occnet_lr is not None else {}),
                                          **({"near_fraction": args.occnet_near} if args.occnet_near else {}),
                                          **dict(args.occnet_set)}),
        "siren_sampling": config_replace(SamplingConfig(), {"seed": args.seed, **quick.get("siren_sampling", {})}),
    }


def collection(args, cfg) -> list[dict]:
    """Every shape of the generated collection: {"id", "family", "split", "path", "samples"}."""
    from inrcore.shapespace.procedural import collection_plan, write_collection

    folder = Path(args.work) / "collection"
    write_collection(folder, cfg["generator"], "shapespace-bench")
    shapes = []
    for shape_id, family, _, split in collection_plan(cfg["generator"]):
        path = mesh_file(folder, shape_id)
        shapes.append({"id": shape_id, "family": family, "split": split, "path": path,
                       "samples": cached_samples(path, cfg["sampling"], args.work)})
    return shapes


def mesh_file(folder: Path, shape_id: str) -> Path:
    path = folder / "meshes" / f"{shape_id}.obj"  # write_collection's layout
    if not path.is_file():
        raise FileNotFoundError(f"{path}: write_collection wrote no mesh file for shape {shape_id!r}")
    return path


def cached_samples(path: Path, sampling, work: str):
    """`sample_shape_space` of the normalised mesh, read from (or written to) an .npz keyed by the settings
    and the mesh file's content."""
    import hashlib

    import numpy as np

    from inrcore.files import write_atomic
    from inrcore.settings import fingerprint
    from inrcore.shapespace.samples import ShapeSpaceSamples, load_normalised_mesh, sample_shape_space

    key = fingerprint(sampling, str(Path(path).resolve()), hashlib.sha256(Path(path).read_bytes()).hexdigest())
    cache = Path(work) / "samples" / key / "samples.npz"
    if cache.is_file():
        with np.load(cache) as data:
            return ShapeSpaceSamples(**{k: data[k] for k in data.files})
    mesh, _ = load_normalised_mesh(path, sampling.extent)
    samples = sample_shape_space(mesh, sampling)
    cache.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(cache, lambda tmp: np.savez(tmp, **{k: getattr(samples, k) for k in (
        "points", "sdf", "surface", "normals", "occupancy_points", "inside")}))
    return samples


def deepsdf_chamfer(reconstruction, reference, n_points: int, seed: int) -> float:
    """DeepSDF's Chamfer x 10^3 in the reference's unit bounding sphere (see the module docstring)."""
    import numpy as np
    from scipy.spatial import cKDTree

    from inrcore.geometry.sampling import sample_surface

    low, high = np.asarray(reference.bounds, dtype=np.float64)
    centre = (low + high) / 2.0
    radius = float(np.linalg.norm(np.asarray(reference.vertices) - centre, axis=1).max())
    rng = np.random.default_rng(seed)
    a = (sample_surface(reconstruction, n_points, rng)[0] - centre) / radius
    b = (sample_surface(reference, n_points, rng)[0] - centre) / radius
    a_to_b, b_to_a = cKDTree(b).query(a)[0], cKDTree(a).query(b)[0]
    return 1e3 * float(np.mean(a_to_b ** 2) + np.mean(b_to_a ** 2))


def measure(mesh, reference, args) -> dict:
    """The figures of one reconstruction, or {"failed": why} when it has no surface."""
    from inrcore.geometry.metrics import compare_meshes
    from inrcore.geometry.settings import MetricsConfig

    if mesh is None or len(mesh.faces) == 0:
        return {"failed": "no surface"}
    try:
        figures = compare_meshes(mesh, reference, MetricsConfig(n_points=args.metric_points, seed=args.seed))
        figures["deepsdf_chamfer"] = deepsdf_chamfer(mesh, reference, args.metric_points, args.seed)
    except ValueError as exc:  # a mesh with no area
        return {"failed": str(exc)}
    return metric_figures({k: figures[k] for k in FIGURES})


def summary(rows: list[dict], keys=FIGURES) -> dict:
    import numpy as np

    out = {}
    for key in keys:
        good = [r[key] for r in rows if key in r]
        every = [r.get(key, WORST[key]) for r in rows]
        median = float(np.median(every)) if every else math.nan
        out[key] = {"mean": float(f"{np.mean(good):.5g}") if good else None,  # None: no figure (or inf)
                    "median": float(f"{median:.5g}") if math.isfinite(median) else None,
                    "n": len(rows), "failed": len(rows) - len(good)}
    return out


def field_mesh(spec, params, args, device):
    """(mesh or None, {"evaluations", "seconds"}) of a plain field's zero level set over [-1, 1]^3."""
    clock = time.perf_counter()
    if args.mesher == "mise":
        from inrcore.queries.mise import mise_field_mesh

        mesh, stats = mise_field_mesh(spec, params, start=args.mesh_start, levels=args.mesh_levels, bound=1.0,
                                      device=device)
    else:
        from inrcore.queries.rangemesh import dense_mesh

        points = args.mesh_start * 2 ** args.mesh_levels + 1  # MISE's final lattice, every point evaluated
        mesh, stats = dense_mesh(spec, params, points, bound=1.0, device=device)
    seconds = round(time.perf_counter() - clock, 2)
    return mesh, {"evaluations": int(stats.get("evaluations", 0)), "seconds": seconds}


def member_rows(model, codes, shapes: list[dict], args, device, extra=None) -> list[dict]:
    """Mesh the member of each code [B, L] and measure it against its shape's normalised mesh."""
    from inrcore.shapespace.decoder import member_network

    rows = []
    for i, shape in enumerate(shapes):
        spec, params = member_network(model.spec, model.params, codes[i])
        mesh, stats = field_mesh(spec, params, args, device)
        rows.append({"shape": shape["id"], "family": shape.get("family", ""), **(extra[i] if extra else {}),
                     **measure(mesh, reference_mesh(shape, args), args), "mesh": stats})
    return rows


def reference_mesh(shape: dict, args):
    from inrcore.shapespace.samples import load_normalised_mesh

    if "mesh" not in shape:
        shape["mesh"] = load_normalised_mesh(shape["path"], args.extent)[0]
    return shape["mesh"]


def objective(model, codes, shapes, fitting, device) -> list[float]:
    """The code-fitting objective of each code on all its shape's samples (clamped L1 + code penalty)."""
    import torch

    from inrcore.shapespace.autodecoder import clamped_l1, code_square_penalty
    from inrcore.shapespace.decoder import decoder_values

    out = []
    with torch.no_grad():
        for i, shape in enumerate(shapes):
            points = torch.from_numpy(shape["samples"].points).to(device)[None]
            sdf = torch.from_numpy(shape["samples"].sdf).to(device)[None]
            code = codes[i:i + 1].to(device)
            values = decoder_values(model.spec, model.params, code, points)
            out.append(float(clamped_l1(values, sdf, fitting.clamp) + code_square_penalty(code, fitting.code_reg)))
    return out


def fitted(model, targets, fitting, device):
    """Codes fitted to the targets, each started as `fitting.init` says (candidates: the space's codes)."""
    from inrcore.shapespace.autodecoder import fit_codes

    return fit_codes(model.spec, model.params, targets, fitting, device, candidates=model.codes)


def starts(fit, names: list[str]) -> list[dict]:
    """Per fitted code the training shape it started at ({"start": id}; nothing with init "random")."""
    return [{"start": names[k]} for k in fit.starts] if fit.starts is not None else [{} for _ in fit.codes]


def reconstruct(model, names, test, cfg, args, device) -> dict:
    from inrcore.settings import config_replace
    from inrcore.shapespace.autodecoder import TargetSamples

    targets = [TargetSamples(s["samples"].points, s["samples"].sdf) for s in test]
    fits = [fitted(model, targets, config_replace(cfg["fitting"], {"seed": args.seed + k}), device)
            for k in range(args.best_of)]
    first = starts(fits[0], names)
    single = member_rows(model, fits[0].codes, test, args, device,
                         [{"final_loss": round(v, 6), **first[i]} for i, v in enumerate(fits[0].losses)])
    scores = [objective(model, fit.codes, test, cfg["fitting"], device) for fit in fits]
    best = [min(range(args.best_of), key=lambda k: scores[k][i]) for i in range(len(test))]
    best_codes = [fits[best[i]].codes[i] for i in range(len(test))]
    best_rows = member_rows(model, best_codes, test, args, device,
                            [{"run": k, "objective": round(scores[k][i], 6)} for i, k in enumerate(best)])
    return {"fit_seconds": [round(f.seconds, 2) for f in fits], "fit_steps": fits[0].steps,
            "single": {"summary": summary(single), "shapes": single},
            f"best_of_{args.best_of}": {"summary": summary(best_rows), "shapes": best_rows}}


def complete(model, names, test, cfg, args, device) -> dict:
    from inrcore.settings import config_replace
    from inrcore.shapespace.autodecoder import TargetSamples
    from inrcore.shapespace.scans import depth_scan, scan_samples

    levels = {}
    for alpha in args.noise_levels:
        scan_config = config_replace(cfg["scan"], {"noise": alpha})
        targets, counts = [], []
        for i, shape in enumerate(test):
            scan = depth_scan(reference_mesh(shape, args), scan_config, args.seed + i, name=shape["id"])
            samples = scan_samples(scan, scan_config, args.seed + i)
            targets.append(TargetSamples(samples.points, samples.sdf, samples.exact))
            counts.append({"scan": samples.counts(), "azimuth_deg": round(scan.azimuth_deg, 2),
                           "elevation_deg": round(scan.elevation_deg, 2)})
        fit = fitted(model, targets, cfg["fitting"], device)
        rows = member_rows(model, fit.codes, test, args, device,
                           [{**c, **first} for c, first in zip(counts, starts(fit, names))])
        levels[f"{alpha:g}"] = {"summary": summary(rows), "fit_seconds": round(fit.seconds, 2), "shapes": rows}
    first, last = f"{args.noise_levels[0]:g}", f"{args.noise_levels[-1]:g}"
    low, high = (levels[a]["summary"]["chamfer_l1"]["median"] for a in (first, last))
    ratio = round(high / low, 4) if low and high is not None else None
    return {"levels": levels, "median_ratio": {"alphas": [first, last], "chamfer_l1": ratio}}


def occupancy(train, test, cfg, args, device) -> dict:
    from inrcore.shapespace.occnet import occnet_mesh, occupancy_iou
    from inrcore.shapespace.occnet_training import (
        choose_threshold,
        evenly_spaced,
        recomputed_statistics,
        train_occnet,
    )
    from inrcore.shapespace.samples import occupancy_shape
    from inrcore.settings import config_from_dict
    from inrcore.shapespace.settings import OccNetConfig, evaluated_with

    config = cfg["occnet"]
    shapes = [occupancy_shape(s["samples"]) for s in train]
    if args.occnet_network:  # a network an earlier run saved, evaluated with this run's views and refinement
        result, reused = torch_load(args.occnet_network), True
        if not hasattr(result, "params") or not hasattr(result, "config"):
            raise SystemExit(f"{args.occnet_network}: not an Occupancy Network this benchmark saved (no params and "
                             f"config)")
        # through the settings' own check: fields added since it was saved take their defaults
        saved = config_from_dict(OccNetConfig, dict(vars(result.config)))
        named = [key for key, _ in args.occnet_set]
        result.config = evaluated_with(saved, config, named)
        if "statistics_batches" in named and config.statistics_batches:  # recomputed, as training now ends
            result.config = dataclasses.replace(result.config, statistics_batches=config.statistics_batches)
            clock = time.perf_counter()
            result.params = recomputed_statistics(result.params, result.config, shapes, device,
                                                  config.statistics_batches)
            result.statistics_seconds = time.perf_counter() - clock
        if result.config.choose_threshold:
            result.config, result.thresholds = choose_threshold(result.params, result.config, shapes, device)
    else:
        result, reused = trained("occnet", (config, cfg["sampling"], [s["id"] for s in train]), args,
                                 lambda: train_occnet(shapes, config, device, on_log=lambda e: log("occnet", e)))
    if "bfloat16" not in vars(result):  # saved before results said; the setting was then true or false
        result.bfloat16 = bool(result.config.bfloat16)
    # the chosen threshold in, with occnet.choose_threshold; the given one where the last weights choose theirs
    config, trained_with = result.config, dataclasses.replace(result.config, threshold=config.threshold)
    rows = []
    for i, shape in enumerate(test):
        s = shape["samples"]
        cloud = input_cloud(shape, config, args.seed + i)
        iou = occupancy_iou(result.params, config, cloud, s.occupancy_points, s.inside, device)
        clock = time.perf_counter()
        mesh, stats = occnet_mesh(result.params, config, cloud, device, start=args.mesh_start,
                                  levels=args.mesh_levels, bound=1.0)
        rows.append({"shape": shape["id"], "family": shape["family"], "iou": round(iou, 5),
                     **measure(mesh, reference_mesh(shape, args), args),
                     "mesh": {"evaluations": int(stats.get("evaluations", 0)),
                              "seconds": round(time.perf_counter() - clock, 2)}})
    seen = []  # the same measure on training shapes (evenly spaced: every family): the generalisation gap
    for i, shape in enumerate(train[k] for k in evenly_spaced(len(train), args.occnet_train_iou)):
        s = shape["samples"]
        cloud = input_cloud(shape, config, args.seed + 1000 + i)
        seen.append({"shape": shape["id"], "family": shape["family"],
                     "iou": round(occupancy_iou(result.params, config, cloud, s.occupancy_points, s.inside,
                                                device), 5)})
    return {"train_seconds": round(result.seconds, 1), "steps": result.steps, "reused": reused,
            "statistics_batches": config.statistics_batches,
            "statistics_seconds": round(result.statistics_seconds, 1),
            "bfloat16_passes": result.bfloat16,
            "threshold": config.threshold, "threshold_iou": result.thresholds,
            "final_loss": result.history[-1]["loss"] if result.history else None,
            "summary": summary(rows, ("iou",) + FIGURES), "shapes": rows,
            **({"training_shapes": {"summary": summary(seen, ("iou",)), "shapes": seen}} if seen else {}),
            **({"last_weights": last_weights(result.last_params, trained_with, shapes, test, args, device)}
               if getattr(result, "last_params", None) is not None else {})}


def input_cloud(shape, config, seed: int):
    """The noisy input cloud a test shape is evaluated from (the same for every network of a run)."""
    import numpy as np

    from inrcore.shapespace.occnet_training import noisy_cloud

    return noisy_cloud(shape["samples"].surface, config.n_points, config.noise, np.random.default_rng(seed))


def last_weights(params, config, shapes, test, args, device) -> dict:
    """Beside a run that averaged its weights (occnet.average_decay): the test IoU of its last weights from
    the same clouds, their statistics recomputed and their threshold chosen as the average's were (not timed
    with the training: a comparison, not part of the method)."""
    from inrcore.shapespace.occnet import occupancy_iou
    from inrcore.shapespace.occnet_training import choose_threshold, recomputed_statistics

    clock = time.perf_counter()
    params = recomputed_statistics(params, config, shapes, device, config.statistics_batches)
    thresholds = {}
    if config.choose_threshold:
        config, thresholds = choose_threshold(params, config, shapes, device)
    rows = [{"shape": shape["id"], "family": shape["family"],
             "iou": round(occupancy_iou(params, config, input_cloud(shape, config, args.seed + i),
                                        shape["samples"].occupancy_points, shape["samples"].inside, device), 5)}
            for i, shape in enumerate(test)]
    return {"threshold": config.threshold, "threshold_iou": thresholds, "summary": summary(rows, ("iou",)),
            "seconds": round(time.perf_counter() - clock, 1), "shapes": rows}


def siren(test, seconds_each: float, cfg, args, device) -> dict:
    from inrcore.geometry.sampling import known_distances, sample_sdf
    from inrcore.sdf.methods import method_overrides
    from inrcore.sdf.settings import TrainConfig
    from inrcore.sdf.training import fit_sdf
    from inrcore.settings import NO_STEP_CAP, config_replace

    training = config_replace(TrainConfig(), method_overrides("siren")["training"] | {
        "steps": NO_STEP_CAP, "seconds": seconds_each, "device": str(device), "log_every": 10**9})
    rows = []
    for shape in test:
        samples = sample_sdf(reference_mesh(shape, args), cfg["siren_sampling"])
        n = samples.n_surface
        fit = fit_sdf(samples.points[:n], samples.normals[:n], samples.points[n:], training,
                      volume_sdf=known_distances(samples.sdf[n:]))
        mesh, stats = field_mesh(fit.spec, fit.params, args, device)
        rows.append({"shape": shape["id"], "family": shape["family"], "steps": fit.steps,
                     "train_seconds": round(fit.seconds, 2), **measure(mesh, shape["mesh"], args), "mesh": stats})
    return {"seconds_each": round(seconds_each, 2), "network": "siren (inr fit --method siren)",
            "summary": summary(rows), "shapes": rows}


def shared(model, names, cfg, args, device) -> dict:
    from inrcore.shapespace.autodecoder import TargetSamples

    shapes = [{"id": name, "path": ROOT / "datasets" / "meshes" / f"{name}.obj"} for name in args.shared]
    for shape in shapes:
        shape["samples"] = cached_samples(shape["path"], cfg["sampling"], args.work)
    targets = [TargetSamples(s["samples"].points, s["samples"].sdf) for s in shapes]
    fit = fitted(model, targets, cfg["fitting"], device)
    rows = member_rows(model, fit.codes, shapes, args, device, starts(fit, names))
    return {"out_of_distribution": True, "note": "the shared meshes are no chairs, tables or mugs: the space was "
            "not trained on anything like them", "summary": summary(rows), "shapes": rows}


def torch_load(path):
    import torch

    return torch.load(path, weights_only=False)


def trained(kind: str, key: tuple, args, train):
    """(`train()`'s model, False), the model saved under --work keyed by the settings and training shapes;
    with --reuse-models (the one an earlier run saved there, True) when present (training is timed, so a
    re-run would differ)."""
    import torch

    from inrcore.settings import fingerprint

    path = Path(args.work) / "models" / f"{kind}-{fingerprint(*key)}.pt"
    if args.reuse_models and path.is_file():
        print(f"[{kind}] reusing {path}", file=sys.stderr, flush=True)
        return torch_load(path), True
    model = train()
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model, path)
    return model, False


def targets(result: dict, best_of: int) -> dict:
    def check(value, limit, better="lower"):
        if value is None:  # the stage ran but most shapes gave no surface
            return {"value": None, "limit": limit, "pass": False}
        passed = value <= limit if better == "lower" else value >= limit
        return {"value": value, "limit": limit, "pass": bool(passed)}

    out = {}
    if "train" in result:
        out["training seconds <= 1800"] = check(result["train"]["seconds"], 1800.0)
    if "reconstruct" in result:
        out["reconstruction median chamfer_l1 <= 0.01"] = check(
            result["reconstruct"]["single"]["summary"]["chamfer_l1"]["median"], 0.01)
        out[f"reconstruction best-of-{best_of} median chamfer_l1 <= 0.01"] = check(
            result["reconstruct"][f"best_of_{best_of}"]["summary"]["chamfer_l1"]["median"], 0.01)
    levels = result.get("completion", {}).get("levels", {})
    if "0" in levels:
        base = levels["0"]["summary"]["chamfer_l1"]["median"]
        out["completion alpha=0 median chamfer_l1 <= 0.02"] = check(base, 0.02)
        if "0.05" in levels:
            out["completion alpha=0.05 median <= 1.5 x alpha=0 median"] = check(
                levels["0.05"]["summary"]["chamfer_l1"]["median"], round(1.5 * base, 6))
    if "occnet" in result:
        out["occnet median IoU >= 0.8"] = check(result["occnet"]["summary"]["iou"]["median"], 0.8, "higher")
    return out


def log(stage: str, entry: dict) -> None:
    shown = {k: (round(v, 5) if isinstance(v, float) else v) for k, v in entry.items()}
    print(f"[{stage}] {json.dumps(shown)}", file=sys.stderr, flush=True)


def setting(text: str) -> tuple:
    """(key, value) of a KEY=VALUE option, the value read as YAML (numbers, booleans, lists)."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    value = yaml.safe_load(value)
    if isinstance(value, str):  # YAML 1.1 reads 1e-5 as a string
        try:
            value = float(value)
        except ValueError:
            pass
    return key.strip(), value


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the result JSON")
    parser.add_argument("--work", default="/tmp/inrflow-shapespace-bench", help="collection and sample cache")
    parser.add_argument("--quick", action="store_true", help="a smoke run: every size shrunk (defaults below)")
    parser.add_argument("--families", default="chair,table,mug")
    parser.add_argument("--per-family", type=int, help=f"shapes per family ({FULL['per_family']})")
    parser.add_argument("--seconds", type=float, help=f"auto-decoder training wall time ({FULL['seconds']:g})")
    parser.add_argument("--fit-steps", type=int, help=f"code-fitting steps ({FULL['fit_steps']})")
    parser.add_argument("--fit-samples", type=int, help=f"samples per shape and step ({FULL['fit_samples']})")
    parser.add_argument("--fit-init", choices=("nearest", "random"),
                        help="where each fitted code starts (default: the settings', nearest training code)")
    parser.add_argument("--best-of", type=int, help=f"K code fits per shape, best reported ({FULL['best_of']})")
    parser.add_argument("--noise-levels", help=f"completion depth noise alphas ({FULL['noise_levels']})")
    parser.add_argument("--occnet-seconds", type=float, help=f"occupancy training ({FULL['occnet_seconds']:g})")
    parser.add_argument("--occnet-lr", type=float, help="the occupancy network's Adam rate (default: the settings')")
    parser.add_argument("--occnet-near", type=float, default=0.0,
                        help="share of the occupancy queries near the surface (default 0, the authors')")
    parser.add_argument("--occnet-set", action="append", type=setting, default=[], metavar="KEY=VALUE",
                        help="an occupancy-network setting (OccNetConfig field; the value read as YAML), repeatable")
    parser.add_argument("--occnet-network", metavar="FILE.pt",
                        help="evaluate this Occupancy Network (one an earlier run saved under --work/models) instead "
                             "of training one: its own settings, with the evaluation settings --occnet-set names "
                             "(occnet.mirror_views, occnet.refine_*; occnet.statistics_batches recomputes its "
                             "batch-norm statistics), and its threshold chosen again under them when it chose one")
    parser.add_argument("--occnet-train-iou", type=int, default=0,
                        help="also the IoU on N training shapes, evenly spaced over the split (default none)")
    parser.add_argument("--mesher", choices=("mise", "dense"), default="mise")
    parser.add_argument("--lr-decoder", type=float, help="the decoder's learning rate (default: the settings')")
    parser.add_argument("--lr-every", type=int, help="epochs between learning-rate halvings (default: the settings')")
    parser.add_argument("--lr-codes", type=float, help="the codes' learning rate (default: the settings')")
    parser.add_argument("--shapes-per-batch", type=int, help="shapes per training step (default: the settings')")
    parser.add_argument("--samples-per-shape", type=int, help="samples per shape and step (default: the settings')")
    parser.add_argument("--siren-shapes", type=int, help="SIREN baseline on the first N test shapes only (default all)")
    parser.add_argument("--mesh-start", type=int, help=f"MISE start cells per axis ({FULL['mesh_start']})")
    parser.add_argument("--mesh-levels", type=int, help=f"MISE refinements ({FULL['mesh_levels']})")
    parser.add_argument("--metric-points", type=int, help=f"samples per mesh in metrics ({FULL['metric_points']})")
    parser.add_argument("--shared", help=f"shared meshes for code fitting, comma-separated ({FULL['shared']})")
    parser.add_argument("--skip", default="", help="stages left out, comma-separated: " + ", ".join(STAGES[1:]))
    parser.add_argument("--reuse-models", action="store_true",
                        help="load the auto-decoder and occupancy network an earlier run saved under --work with "
                             "the same settings instead of training them")
    parser.add_argument("--paper", action="store_true", help="the papers' network sizes (for a GPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.noise_levels = [float(v) for v in args.noise_levels.split(",") if v]
    args.shared = [s for s in args.shared.split(",") if s]
    skip = {s for s in args.skip.split(",") if s}
    if skip - set(STAGES[1:]) or set(args.shared) - set(SHARED):
        parser.error(f"unknown stages or shared meshes: {sorted(skip - set(STAGES[1:]))} {args.shared}")
    import torch

    from inrcore.device import resolve_device
    from inrcore.settings import config_to_dict

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    cfg = settings_of(args)
    args.extent = cfg["sampling"].extent
    result: dict = {"settings": {**{k: config_to_dict(v) for k, v in cfg.items()},
                                 **{k: v for k, v in vars(args).items() if k not in ("extent",)}},
                    "cpu": {"model": cpu_model(), "threads": args.threads,
                            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS")},
                    "seconds": {}}

    def stage(name: str, run, keep: bool = True):
        clock = time.perf_counter()
        print(f"[{name}] ...", file=sys.stderr, flush=True)
        value = run()
        result["seconds"][name] = round(time.perf_counter() - clock, 1)
        if keep:
            result[name] = value
            result["targets"] = targets(result, args.best_of)
            write_result(args.out, "shapespace", argv, result, quiet=True)
        return value

    shapes = stage("collection", lambda: collection(args, cfg), keep=False)
    train = [s for s in shapes if s["split"] == "train"]
    test = [s for s in shapes if s["split"] == "test"]
    result["collection"] = {"shapes": len(shapes), "train": len(train), "test": len(test),
                            "test_ids": [s["id"] for s in test], "work": str(Path(args.work) / "collection")}
    if not train or not test:
        raise SystemExit(f"the collection has {len(train)} train and {len(test)} test shapes: need both")
    from inrcore.shapespace.autodecoder import train_auto_decoder

    samples = [(s["samples"].points, s["samples"].sdf) for s in train]
    names = [s["id"] for s in train]  # the codes' order
    key = (cfg["training"], cfg["sampling"], names)
    model, reused = stage("train", lambda: trained("autodecoder", key, args, lambda: train_auto_decoder(
        samples, cfg["training"], device, on_log=lambda e: log("train", e))), keep=False)
    result["train"] = {"seconds": round(model.seconds, 1), "epochs": model.epochs, "steps": model.steps,
                       "shapes_per_second": round(model.epochs * len(train) / max(model.seconds, 1e-9), 2),
                       "final_loss": model.history[-1]["loss"] if model.history else None,
                       "reused": reused}
    if "reconstruct" not in skip:
        stage("reconstruct", lambda: reconstruct(model, names, test, cfg, args, device))
    if "completion" not in skip:
        stage("completion", lambda: complete(model, names, test, cfg, args, device))
    if "occnet" not in skip:
        stage("occnet", lambda: occupancy(train, test, cfg, args, device))
    if "siren" not in skip:
        # Each SIREN gets the auto-decoder's training time divided by the number of test shapes (the same
        # total); --siren-shapes fits only the first N of them (the time each gets is unchanged).
        stage("siren", lambda: siren(test[:args.siren_shapes or len(test)], model.seconds / len(test), cfg, args,
                                     device))
    if "shared" not in skip and args.shared:
        stage("shared", lambda: shared(model, names, cfg, args, device))
    result["targets"] = targets(result, args.best_of)
    report = write_result(args.out, "shapespace", argv, result, quiet=True)
    print_summary(report)
    return 0


def print_summary(report: dict) -> None:
    def line(label, figures):
        parts = [f"{k} mean {v['mean']} median {v['median']}" + (f" ({v['failed']} failed)" if v["failed"] else "")
                 for k, v in figures.items()]
        print(f"{label}: " + "; ".join(parts))

    for key, value in report.items():
        if key == "reconstruct":
            for name, part in value.items():
                if isinstance(part, dict) and "summary" in part:
                    line(f"reconstruct {name}", part["summary"])
        elif key == "completion":
            for alpha, part in value["levels"].items():
                line(f"completion alpha={alpha}", part["summary"])
            ratio = value["median_ratio"]
            print(f"completion median chamfer_l1 at alpha {ratio['alphas'][1]} / at {ratio['alphas'][0]}: "
                  f"{ratio['chamfer_l1']}")
        elif key in ("occnet", "siren", "shared"):
            line(key, value["summary"])
    print("seconds: " + json.dumps(report["seconds"]) + f"; training: {json.dumps(report.get('train'))}")
    for name, check in report["targets"].items():
        print(f"target {name}: {check['value']} -> {'PASS' if check['pass'] else 'FAIL'}")


if __name__ == "__main__":
    sys.exit(main())
