"""One shape's skeleton, stage by stage: field (neural only) -> candidates -> selection -> linking.

Each stage is a function of arrays and settings, so the collection flow can run them as separate
tasks and store what passes between them; `skeleton_of_shape` runs them all in this process
(`inr skeleton`). Everything is computed in the normalised frame (`inrcore.skeleton.inputs`);
`Skeleton.in_input_frame` moves a result back to the input's own coordinates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Optional

import numpy as np

from inrcore.device import resolve_device
from inrcore.fields.networks import FieldSpec, Params
from inrcore.geometry.meshes import Normalisation
from inrcore.sdf.training import FitResult
from inrcore.skeleton.candidates import Candidates, coverage_axis_candidates, neural_candidates
from inrcore.skeleton.cover import CoverResult, select_balls
from inrcore.skeleton.inputs import SkeletonInput, read_skeleton_input
from inrcore.skeleton.linking import skeleton_simplices
from inrcore.skeleton.metrics import skeleton_topology
from inrcore.skeleton.settings import SkeletonConfig
from inrcore.skeleton.tvfield import fit_skeleton_field


@dataclass(frozen=True, eq=False)
class Skeleton:
    """Skeletal balls linked into a complex: points [K, 3], radii [K], edges [E, 2], faces [F, 3]
    (indices into points), isolated: indices of points in no edge or face."""

    points: np.ndarray
    radii: np.ndarray
    edges: np.ndarray
    faces: np.ndarray
    isolated: np.ndarray

    def in_input_frame(self, normalisation: Normalisation) -> "Skeleton":
        """The same skeleton in the input's own coordinates (radii divided by the scale)."""
        return replace(self, points=normalisation.invert(np.asarray(self.points, np.float64)),
                       radii=np.asarray(self.radii, np.float64) / normalisation.scale)


@dataclass(eq=False)
class SkeletonResult:
    """Everything `skeleton_of_shape` made: the skeleton (normalised frame), its candidates and cover,
    the fitted field (neural only), seconds per stage and the input."""

    method: str
    skeleton: Skeleton
    candidates: Candidates
    cover: CoverResult
    shape: SkeletonInput
    fit: Optional[FitResult] = None
    seconds: dict = field(default_factory=dict)


def link_selected(candidates: Candidates, selected: np.ndarray, delta: float) -> Skeleton:
    """The selected candidate balls (indices [K]) linked by the regular triangulation with the surface samples."""
    points, radii = candidates.points[selected], candidates.radii[selected]
    links = skeleton_simplices(points, radii, candidates.surface, delta)
    return Skeleton(points, radii, links.edges, links.faces, links.isolated)


def skeleton_candidates(shape: SkeletonInput, config: SkeletonConfig, field: Optional[tuple[FieldSpec, Params]] = None,
                        bound: float = 1.0) -> Candidates:
    """The candidates of `config.method`: traced in the fitted field (`field`: its spec and
    parameters, needed for "neural") or taken from the input by winding number ("coverage-axis")."""
    if config.method == "neural":
        if field is None:
            raise ValueError("the neural method needs the fitted field")
        return neural_candidates(*field, shape, config.trace, resolve_device(config.device), bound,
                                 seed=config.field.seed)
    return coverage_axis_candidates(shape, config.trace, config.candidates, bound)


def skeleton_of_shape(path, config: SkeletonConfig, on_log: Optional[Callable[[dict], None]] = None,
                      bound: float = 1.0) -> SkeletonResult:
    """Read a mesh or oriented point cloud and compute its skeleton with `config.method`.

    Raises ShapeError naming the file for unreadable input or a shape with no interior, and when
    no candidate ball is found.
    """
    seconds = {}
    start = time.perf_counter()
    shape = read_skeleton_input(path, config.n_input, config.extent, seed=config.candidates.seed)
    seconds["input"] = time.perf_counter() - start
    fit = None
    if config.method == "neural":
        start = time.perf_counter()
        fit = fit_skeleton_field(shape.points, shape.normals, config.field, config.device, bound, on_log)
        seconds["field"] = time.perf_counter() - start
    start = time.perf_counter()
    candidates = skeleton_candidates(shape, config, None if fit is None else (fit.spec, fit.params), bound)
    seconds["candidates"] = time.perf_counter() - start
    check_candidates(candidates, shape.path)
    start = time.perf_counter()
    cover = select_balls(candidates.surface, candidates.points, candidates.radii, config.cover)
    seconds["selection"] = time.perf_counter() - start
    start = time.perf_counter()
    skeleton = link_selected(candidates, cover.selected, config.cover.delta)
    seconds["linking"] = time.perf_counter() - start
    return SkeletonResult(config.method, skeleton, candidates, cover, shape, fit, seconds)


def check_candidates(candidates: Candidates, path) -> None:
    """ShapeError naming the file when there is no candidate ball or no surface sample."""
    from inrcore.errors import ShapeError

    if len(candidates.surface) == 0:
        raise ShapeError(path, "no surface samples were found on the fitted field's zero set")
    if len(candidates.points) == 0:
        raise ShapeError(path, f"no skeletal candidate was found inside the shape "
                               f"({candidates.considered} points examined)")


def skeleton_figures(skeleton: Skeleton, cover: dict, n_candidates: int, n_surface: int) -> dict:
    """A skeleton's figures: counts and topology (`skeleton_topology`), isolated points, candidates,
    surface samples and how many of them no ball covers, the radii (normalised frame), and the
    cover's solver record (`CoverResult.to_dict`)."""
    radii = np.asarray(skeleton.radii)
    return {
        **skeleton_topology(len(skeleton.points), skeleton.edges, skeleton.faces),
        "isolated": int(len(skeleton.isolated)),
        "candidates": int(n_candidates),
        "surface_samples": int(n_surface),
        "uncovered": int(cover["n_uncovered"]),
        "radius_min": float(radii.min()) if len(radii) else None,
        "radius_max": float(radii.max()) if len(radii) else None,
        "cover": cover,
    }


def skeleton_metrics(result: SkeletonResult) -> dict:
    """The figures `metrics.json` holds (`skeleton_figures`), with the method, seconds per stage, the
    normalisation, the input's kind and, for the neural method, the field's training steps."""
    figures = {
        "method": result.method,
        **skeleton_figures(result.skeleton, result.cover.to_dict(), len(result.candidates.points),
                           len(result.candidates.surface)),
        "seconds": {stage: round(value, 3) for stage, value in result.seconds.items()},
        "normalisation": result.shape.normalisation.to_dict(),
        "input_kind": result.shape.kind,
    }
    if result.fit is not None:
        figures["field_steps"] = result.fit.steps
        figures["field_device"] = result.fit.device
    return figures
