"""Partial scans: one depth image of a shape ray-cast from a seeded viewpoint, and the SDF samples made
from it for completing the shape by code optimisation (DeepSDF's shape completion).

The scheme (the paper does not give its distances; ours are `ScanConfig`'s fields):

- The camera. A pinhole `distance` from the origin of the normalised frame, looking at the origin from
  azimuth uniform in [0, 360) and elevation uniform in `elevation_deg` (`inrcore.geometry.cameras.
  camera_axes`: y is up, azimuth turns from +z towards +x, elevation 90 looks straight down -y).
  `resolution`² pixels share the field of view `fov_deg` (horizontal = vertical); each pixel's ray goes
  through its centre. The first hit along each ray comes from trimesh's ray intersector (embree
  when embreex is installed, trimesh's own otherwise); its depth is the ray parameter t (distance
  along the unit ray, not the z-depth). Gaussian noise of standard deviation `noise` (α) is added to
  the depth of every hit, so the back-projected points move along their rays.
- The normals. From the depth image alone, as a real scanner would (`inrcore.geometry.depthmaps.
  depth_normals`): at every hit pixel the back-projected points of the neighbours along each image
  axis give a tangent (a difference weighted for uneven steps, or the shorter one-sided step beside a
  depth jump, so a pixel beside a silhouette or an occlusion still gets a tangent from the surface it
  belongs to), the normal is the tangents' cross product turned towards the camera. Undefined (NaN)
  where an axis has no hit neighbour or the estimated surface is seen at a grazing angle.
- The samples. Per hit pixel with a normal: the surface point (distance 0), the points `offset`
  in front of and behind it along the ray with targets ±offset·|n·d| (the distance to the tangent
  plane; exact for a plane, off by at most offset²/(2 radius) on a curved surface), and
  `free_per_ray` points uniform along the ray between `near` (where the ray enters the cube
  [-1, 1]^3, the normalised frame's domain; the camera itself when it is inside) and the hit minus
  `free_margin`, known only to be outside. Pixels without a normal give their surface point only.
- Noisy depth (`ScanConfig.denoise`). Before the normals and samples, the depth noise is estimated
  from the image itself (`depthmaps.depth_noise`: the median absolute second difference of depth
  along the image axes, robust to edges), and where it is above what the samples tolerate, each hit's
  depth is replaced by an edge-aware local fit (`depthmaps.smooth_depth`: a plane in pixel
  coordinates fitted over a window of hits within three noise deviations of the local median), the
  window the smallest that brings the remaining noise under a quarter of `offset`, at most
  `denoise_radius` pixels; the free margin grows to three times the remaining noise. A clean scan is
  left exactly as it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import trimesh

from inrcore.errors import ConfigError, ShapeError
from inrcore.geometry.cameras import camera_axes
from inrcore.geometry.depthmaps import RANGE_SIGMAS, depth_noise, depth_normals, smooth_depth
from inrcore.shapespace.settings import ScanConfig


DOMAIN = 1.0  # the normalised frame's cube [-1, 1]^3, where free-space samples are drawn


@dataclass(frozen=True, eq=False)
class DepthScan:
    """One depth image: origin [3] (the camera's centre), directions [H, W, 3] (unit rays),
    depth [H, W] (the ray parameter t of the first hit, np.inf where the ray hits nothing),
    normals [H, W, 3] (estimated from the depth image, towards the camera; NaN where undefined),
    and the view's azimuth and elevation in degrees. float64 arrays."""

    origin: np.ndarray
    directions: np.ndarray
    depth: np.ndarray
    normals: np.ndarray
    azimuth_deg: float
    elevation_deg: float

    @property
    def hits(self) -> np.ndarray:
        """[H, W] bool: the pixels whose ray hit the shape."""
        return np.isfinite(self.depth)

    def points(self) -> np.ndarray:
        """[K, 3] the back-projected hit points, origin + depth · direction, in row-major pixel order."""
        hits = self.hits
        return self.origin + self.depth[hits][:, None] * self.directions[hits]


@dataclass(frozen=True, eq=False)
class ScanSamples:
    """SDF samples made from a depth scan: points [N, 3] and sdf [N] (float32), exact [N] bool;
    the counts of each kind: n_surface, n_front (= the number behind), n_free.

    exact True: sdf is a target value (0 on the surface, ±offset·|n·d| in front of and behind it).
    exact False: a free-space point between the camera and the hit, known only to be outside
    (sdf > 0); the value stored is its distance along the ray to the observed hit. Without noise
    that bounds the true distance from above (the hit lies on the surface); with noise not even
    that holds, so use only its sign (the hinge of `CodeFitConfig.free_space`).
    Order: the surface points, then the points in front, behind, and the free-space points.
    noise: the depth noise estimated from the image (`depthmaps.depth_noise`); radius: the smoothing window's
    radius in pixels (0: the depth was used as measured).
    """

    points: np.ndarray
    sdf: np.ndarray
    exact: np.ndarray
    n_surface: int
    n_front: int
    n_free: int
    noise: float = 0.0
    radius: int = 0

    def counts(self) -> dict:
        return {"samples": int(len(self.points)), "surface": self.n_surface, "front": self.n_front,
                "behind": self.n_front, "free": self.n_free, "noise_estimate": round(self.noise, 6),
                "denoise_radius": self.radius}


def view_angles(config: ScanConfig, rng: np.random.Generator) -> tuple[float, float]:
    """(azimuth, elevation) in degrees: azimuth uniform in [0, 360), elevation uniform between the two
    values of `config.elevation_deg`."""
    if len(config.elevation_deg) != 2:
        raise ConfigError(f"scan.elevation_deg: expected two values (lowest, highest), "
                          f"got {list(config.elevation_deg)}")
    low, high = sorted(config.elevation_deg)
    if low < -90.0 or high > 90.0:
        raise ConfigError(f"scan.elevation_deg: elevations must lie in [-90, 90], "
                          f"got {list(config.elevation_deg)}")
    return float(rng.uniform(0.0, 360.0)), float(rng.uniform(low, high))


def pinhole_rays(azimuth_deg: float, elevation_deg: float, distance: float, resolution: int,
                 fov_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """The camera centre [3] and unit ray directions [R, R, 3] of a square pinhole image looking at the
    origin; row 0 is the top of the picture (the camera's up axis), column 0 its left."""
    towards, right, up = camera_axes(azimuth_deg, elevation_deg)
    half = math.tan(math.radians(fov_deg) / 2.0)
    steps = (np.arange(resolution) + 0.5) / resolution * 2.0 - 1.0  # pixel centres in (-1, 1)
    x = steps[None, :, None] * half
    y = -steps[:, None, None] * half
    directions = -towards + x * right + y * up
    directions = directions / np.linalg.norm(directions, axis=-1, keepdims=True)
    return distance * towards, directions


def first_hit_depths(mesh: trimesh.Trimesh, origin: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """depth [...] of the first hit of each ray (directions [..., 3], unit) from origin [3]: the ray
    parameter t, np.inf where the ray misses the mesh."""
    flat = directions.reshape(-1, 3)
    origins = np.broadcast_to(origin, flat.shape)
    locations, index_ray, _ = mesh.ray.intersects_location(origins, flat, multiple_hits=False)
    depth = np.full(len(flat), np.inf)
    depth[index_ray] = np.einsum("ij,ij->i", locations - origin, flat[index_ray])
    return depth.reshape(directions.shape[:-1])


def depth_scan(mesh: trimesh.Trimesh, config: ScanConfig, seed: Optional[int] = None, *,
               azimuth_deg: Optional[float] = None, elevation_deg: Optional[float] = None,
               name: str = "mesh") -> DepthScan:
    """One noisy depth image of a mesh already in the normalised frame.

    The view is drawn from np.random.default_rng(seed, or config.seed when None); `azimuth_deg` and
    `elevation_deg` replace the drawn angles when given (a fixed view, e.g. for tests). The depth noise
    N(0, config.noise²) comes from a second stream of the same seed, so a scan with noise sees from
    the same view as the one without. `name` (the mesh's file, say) starts the error message.

    Raises:
        ShapeError: no ray hits the mesh (it lies outside the camera's field of view).
    """
    seed = config.seed if seed is None else seed
    drawn_azimuth, drawn_elevation = view_angles(config, np.random.default_rng(seed))
    azimuth = drawn_azimuth if azimuth_deg is None else float(azimuth_deg)
    elevation = drawn_elevation if elevation_deg is None else float(elevation_deg)
    origin, directions = pinhole_rays(azimuth, elevation, config.distance, config.resolution, config.fov_deg)
    depth = first_hit_depths(mesh, origin, directions)
    hits = np.isfinite(depth)
    if not hits.any():
        low, high = mesh.bounds if len(mesh.vertices) else (np.zeros(3), np.zeros(3))
        raise ShapeError(name, f"the scan from azimuth {azimuth:.1f}°, elevation {elevation:.1f}° at distance "
                               f"{config.distance:g} ({config.resolution}² pixels over {config.fov_deg:g}°) hit "
                               f"nothing: the mesh's bounds {np.round(low, 3).tolist()} to "
                               f"{np.round(high, 3).tolist()} lie outside the view; is the mesh in the "
                               f"normalised frame?")
    if config.noise > 0:
        noise_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(2)[1])
        depth[hits] += noise_rng.normal(0.0, config.noise, size=int(hits.sum()))
    normals = depth_normals(origin, directions, depth)
    return DepthScan(origin, directions, depth, normals, azimuth, elevation)


def denoise_radius(noise: float, offset: float, largest: int) -> int:
    """The smallest window radius r (at most `largest`) whose (2r + 1)² pixels bring depth noise of
    deviation `noise` under offset / 4 (the deviation of a mean of n is σ/√n); 0 when it is under already."""
    if noise <= offset / 4.0:
        return 0
    side = noise / (offset / 4.0)  # 2r + 1 pixels a side
    return int(min(largest, math.ceil((side - 1.0) / 2.0)))


def denoised(scan: DepthScan, config: ScanConfig) -> tuple[DepthScan, float, int]:
    """(the scan with its depth smoothed and normals re-estimated, the noise estimated from it, the
    window radius used) as the module docstring says; the scan itself when the noise needs no smoothing."""
    noise = depth_noise(scan.depth) if config.denoise else 0.0
    radius = denoise_radius(noise, config.offset, config.denoise_radius)
    if radius == 0:
        return scan, noise, 0
    depth = smooth_depth(scan.depth, noise, radius)
    normals = depth_normals(scan.origin, scan.directions, depth)
    return DepthScan(scan.origin, scan.directions, depth, normals, scan.azimuth_deg, scan.elevation_deg), noise, radius


def cube_entry(origin: np.ndarray, directions: np.ndarray, bound: float = DOMAIN) -> np.ndarray:
    """t [K] where rays (origin [3], directions [K, 3]) enter the cube [-bound, bound]^3 (0 for an
    origin inside it; inf for rays missing it)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        low = (-bound - origin) / directions
        high = (bound - origin) / directions
    near = np.nanmax(np.minimum(low, high), axis=-1)
    far = np.nanmin(np.maximum(low, high), axis=-1)
    return np.where(near <= far, np.maximum(near, 0.0), np.inf)


def scan_samples(scan: DepthScan, config: ScanConfig, seed: Optional[int] = None) -> ScanSamples:
    """The SDF samples of a depth scan (the module docstring gives the scheme, noisy depth included);
    the free-space points are drawn from np.random.default_rng(seed, or config.seed when None)."""
    rng = np.random.default_rng(config.seed if seed is None else seed)
    scan, noise, radius = denoised(scan, config)
    # the noise left after smoothing over n pixels is about noise / sqrt(n); free points stay 3 of it clear
    margin = max(config.free_margin, RANGE_SIGMAS * noise / (2 * radius + 1)) if radius else config.free_margin
    hits = scan.hits
    surface = scan.points()
    directions = scan.directions[hits]
    normals = scan.normals[hits]
    depth = scan.depth[hits]
    known = np.isfinite(normals).all(axis=-1)
    distance = config.offset * np.abs(np.einsum("ki,ki->k", normals[known], directions[known]))
    front = surface[known] - config.offset * directions[known]
    behind = surface[known] + config.offset * directions[known]
    near = cube_entry(scan.origin, directions[known])
    far = depth[known] - margin
    room = far > near
    t = rng.uniform(size=(int(room.sum()), config.free_per_ray))
    t = near[room, None] + t * (far - near)[room, None]
    free = scan.origin + t[..., None] * directions[known][room][:, None, :]
    free_sdf = depth[known][room][:, None] - t
    points = np.concatenate([surface, front, behind, free.reshape(-1, 3)])
    sdf = np.concatenate([np.zeros(len(surface)), distance, -distance, free_sdf.reshape(-1)])
    exact = np.ones(len(points), dtype=bool)
    exact[len(points) - free_sdf.size:] = False
    return ScanSamples(np.ascontiguousarray(points, dtype=np.float32), np.ascontiguousarray(sdf, dtype=np.float32),
                       exact, int(len(surface)), int(known.sum()), int(free_sdf.size), noise, radius)


def scan_cloud_picture(scan: DepthScan) -> np.ndarray:
    """[H, W, 3] uint8: the depth image in grey, the nearest hit white (255), the farthest 64, no hit
    black."""
    hits = scan.hits
    picture = np.zeros(scan.depth.shape, dtype=np.uint8)
    if hits.any():
        depth = scan.depth[hits]
        span = float(depth.max() - depth.min())
        closeness = (depth.max() - depth) / span if span > 0 else np.ones_like(depth)
        picture[hits] = np.round(64.0 + 191.0 * closeness).astype(np.uint8)
    return np.repeat(picture[..., None], 3, axis=-1)


SCAN_ARRAYS = ("origin", "directions", "depth")  # a scan file's required arrays; "center" and "scale" optional


def write_depth_scan(path, scan: DepthScan, normalisation=None) -> None:
    """Write a depth scan as an .npz file that `read_depth_scan` (and `inr deepsdf complete`) reads back:
    origin [3], directions [H, W, 3] and depth [H, W] (inf where nothing was hit) in the input's
    coordinates when `normalisation` (an `inrcore.geometry.meshes.Normalisation`) is given, with its
    center [3] and scale; in the normalised frame otherwise. Written atomically."""
    from inrcore.files import write_atomic

    arrays = {"origin": np.asarray(scan.origin, np.float64), "directions": np.asarray(scan.directions, np.float64),
              "depth": np.asarray(scan.depth, np.float64)}
    if normalisation is not None:
        scale = float(normalisation.scale)
        arrays["origin"] = normalisation.invert(arrays["origin"][None])[0]
        arrays["depth"] = arrays["depth"] / scale
        arrays["center"] = np.asarray(normalisation.center, np.float64)
        arrays["scale"] = np.asarray(scale, np.float64)

    write_atomic(path, lambda tmp: np.savez(tmp, **arrays))  # tmp keeps the .npz suffix: savez adds none


def read_depth_scan(path) -> tuple[DepthScan, Optional[object]]:
    """(scan in the normalised frame, its Normalisation or None) from an .npz depth-scan file.

    The file holds origin [3] (the camera's centre), directions [H, W, 3] (one ray per pixel, made unit
    here) and depth [H, W] (the distance along each ray to the first hit; inf, NaN or <= 0 where nothing
    was hit), and optionally center [3] and scale: the similarity normalised = (p - center) · scale that
    takes the file's coordinates into the shape space's normalised frame (`write_depth_scan` writes it).
    Without them the scan is taken to be in the normalised frame already. Normals are estimated from the
    depth image (`depth_normals`). Nothing in the file is unpickled. ShapeError naming the file when it is
    unreadable, misses an array, has the wrong shapes or non-finite cameras, or holds no hit."""
    from inrcore.geometry.meshes import Normalisation

    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: np.asarray(data[k], np.float64) for k in data.files if k in SCAN_ARRAYS + ("center", "scale")}
    except (OSError, ValueError, EOFError) as exc:  # missing, not a zip, or object arrays (pickles refused)
        raise ShapeError(path, f"not a readable depth-scan .npz file: {exc}") from exc
    missing = [k for k in SCAN_ARRAYS if k not in arrays]
    if missing:
        raise ShapeError(path, f"depth-scan file lacks {', '.join(missing)} (needs origin [3], directions "
                               f"[H, W, 3], depth [H, W])")
    origin, directions, depth = arrays["origin"], arrays["directions"], arrays["depth"]
    if origin.shape != (3,) or depth.ndim != 2 or directions.shape != depth.shape + (3,):
        raise ShapeError(path, f"expected origin [3], directions [H, W, 3] and depth [H, W], got "
                               f"{list(origin.shape)}, {list(directions.shape)} and {list(depth.shape)}")
    length = np.linalg.norm(directions, axis=-1)
    if not np.isfinite(origin).all() or not (np.isfinite(length).all() and (length > 0).all()):
        raise ShapeError(path, "origin and directions must be finite, every direction non-zero")
    directions = directions / length[..., None]
    depth = np.where(np.isfinite(depth) & (depth > 0), depth, np.inf)
    if not np.isfinite(depth).any():
        raise ShapeError(path, "the depth scan holds no hit (every depth is inf, NaN or <= 0)")
    normalisation = None
    if ("center" in arrays) != ("scale" in arrays):
        raise ShapeError(path, "a depth-scan file gives both center and scale or neither")
    if "center" in arrays:
        try:
            normalisation = Normalisation(tuple(arrays["center"].reshape(-1)), float(arrays["scale"].reshape(-1)[0]))
        except (ValueError, IndexError) as exc:
            raise ShapeError(path, f"bad normalisation: {exc}") from exc
        origin = normalisation.apply(origin[None])[0]
        depth = depth * normalisation.scale
    normals = depth_normals(origin, directions, depth)
    return DepthScan(origin, directions, depth, normals, math.nan, math.nan), normalisation
