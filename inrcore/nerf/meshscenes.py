"""Synthetic NeRF scenes from meshes: posed RGBA views rendered by ray casting, Blender layout.

Cameras follow the Blender/NeRF (OpenGL) convention of `inrcore.nerf.scenes`: a pose is the 4x4
camera-to-world matrix, the camera looks down its local -z, +x is image right, +y image up;
pixel (row v, column u) covers [u, u + 1) x [v, v + 1) with its centre at (u + 0.5, v + 0.5),
and the camera-space direction through image point (x, y) is ((x - cx) / fx, -(y - cy) / fy, -1).

Cameras sit on a sphere of some radius around the origin at Fibonacci-spiral directions
(evenly spread, deterministic; a seed turns the spiral about the world y axis), each looking
at the origin with world y up in its image.

Shading (`shade_surface`), meant to give a radiance field something to learn: a base colour
that varies smoothly over the surface with position (two scales of sinusoids, so views carry
texture-like structure), lit by ambient light plus Lambert from two fixed world lights, plus a
white Blinn-Phong highlight from each light, which depends on the viewing direction. Normals
are the mesh's vertex normals interpolated across each triangle, except at corners where the
vertex normal is more than CREASE_DEGREES from the triangle's normal (sharp edges: a cube
stays flat-faced) where the triangle's own normal is used, all turned to face the camera
(two-sided, like `inrcore.geometry.render`). Each pixel averages 2 x 2 rays (at offsets 0.25 and 0.75
in the pixel): alpha is the fraction of them that hit the mesh, and RGB the mean colour of
those that did (straight, not premultiplied, alpha), so compositing on a background gives
anti-aliased edges.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import trimesh

from inrcore.geometry.cameras import Intrinsics, look_at_origin
from inrcore.geometry.meshes import load_mesh, normalise_mesh
from inrcore.nerf.scenewrite import write_scene
from inrcore.nerf.settings import MeshSceneConfig


AMBIENT = 0.2
# Directions towards the two lights (world space, normalised when used) and their intensities.
LIGHT_DIRECTIONS = ((0.5, 1.0, 0.6), (-0.7, -0.3, -0.6))
LIGHT_INTENSITIES = (0.75, 0.35)
SPECULAR = 0.45
SHININESS = 40.0
SUPERSAMPLE = 2
CREASE_DEGREES = 30.0
# Base colour: 0.5 + 0.25 sin(COARSE_FREQ . p + phase) + 0.12 sin(FINE_FREQ . p) per channel.
_COARSE_FREQ = np.array([[2.1, 0.9, -1.3], [-1.0, 2.4, 0.7], [0.6, -1.1, 2.2]])  # [3 channels, 3]
_COARSE_PHASE = np.array([0.3, 2.1, 4.2])
_FINE_FREQ = np.array([[7.0, -3.0, 5.0], [4.0, 6.5, -2.5], [-5.5, 3.5, 6.0]])


def camera_poses_on_sphere(n: int, radius: float, upper_hemisphere: bool = False,
                           seed: int | None = None) -> np.ndarray:
    """`n` cameras on the sphere of `radius`, evenly spread, each looking at the origin with y up.

    Direction i (i = 0 .. n - 1) of the Fibonacci spiral has height y_i = 1 - 2 (i + 0.5) / n
    (whole sphere) or 1 - (i + 0.5) / n (upper half, y > 0) and azimuth i * pi (3 - sqrt 5)
    (+ an angle drawn uniformly in [0, 2 pi) from `seed`; None: no turn), measured about y
    from +z towards +x.

    Returns:
        poses [n, 4, 4] float64 camera-to-world: translation radius * direction_i, the camera's
        z axis = direction_i (so its -z points at the origin), x axis horizontal.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if not (math.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a positive number, got {radius!r}")
    index = np.arange(n, dtype=np.float64)
    if upper_hemisphere:
        height = 1.0 - (index + 0.5) / n
    else:
        height = 1.0 - 2.0 * (index + 0.5) / n
    turn = 0.0 if seed is None else float(np.random.default_rng(seed).uniform(0.0, 2.0 * math.pi))
    azimuth = index * math.pi * (3.0 - math.sqrt(5.0)) + turn
    ring = np.sqrt(np.clip(1.0 - height**2, 0.0, None))
    directions = np.stack([ring * np.sin(azimuth), height, ring * np.cos(azimuth)], axis=1)  # [n, 3]
    return look_at_origin(radius * directions)


def pixel_ray_directions(intrinsics, supersample: int = SUPERSAMPLE) -> np.ndarray:
    """Camera-space directions of the supersample^2 rays of every pixel, not normalised (z = -1).

    Ray (a, b) of pixel (v, u) passes through image point (u + (b + 0.5) / s, v + (a + 0.5) / s).

    Args:
        intrinsics: an `inrcore.geometry.cameras.Intrinsics` (width, height, fx, fy, cx, cy).
    Returns:
        directions [H, W, s * s, 3] float64.
    """
    offsets = (np.arange(supersample) + 0.5) / supersample  # [s]
    x = np.arange(intrinsics.width)[:, None] + offsets[None, :]  # [W, s]
    y = np.arange(intrinsics.height)[:, None] + offsets[None, :]  # [H, s]
    cam_x = (x - intrinsics.cx) / intrinsics.fx  # [W, s]
    cam_y = -(y - intrinsics.cy) / intrinsics.fy  # [H, s]
    height, width, s = intrinsics.height, intrinsics.width, supersample
    directions = np.empty((height, width, s, s, 3))
    directions[..., 0] = cam_x[None, :, None, :]  # column offset b is the last sample axis
    directions[..., 1] = cam_y[:, None, :, None]  # row offset a
    directions[..., 2] = -1.0
    return directions.reshape(height, width, s * s, 3)


def base_colour(points: np.ndarray) -> np.ndarray:
    """The surface's albedo at points [K, 3] -> RGB [K, 3] in [0.05, 0.95], smooth in position."""
    points = np.asarray(points, dtype=np.float64)
    colour = 0.5 + 0.25 * np.sin(points @ _COARSE_FREQ.T + _COARSE_PHASE) + 0.12 * np.sin(points @ _FINE_FREQ.T)
    return np.clip(colour, 0.05, 0.95)


def shade_surface(points: np.ndarray, normals: np.ndarray, towards_viewer: np.ndarray) -> np.ndarray:
    """Colours of surface points seen from some direction (see the module docstring).

    colour = albedo(p) * (AMBIENT + sum_l I_l max(n . L_l, 0))
             + SPECULAR * sum_l I_l max(n . H_l, 0)^SHININESS [n . L_l > 0],  H_l = unit(L_l + V)

    Args:
        points [K, 3]: where the surface is hit.
        normals [K, 3]: unit normals there, facing the viewer.
        towards_viewer [K, 3]: unit vectors V from the points towards the camera.
    Returns:
        RGB [K, 3] float64 in [0, 1].
    """
    normals = np.asarray(normals, dtype=np.float64)
    towards_viewer = np.asarray(towards_viewer, dtype=np.float64)
    light = np.full(len(normals), AMBIENT)
    highlight = np.zeros(len(normals))
    for direction, intensity in zip(LIGHT_DIRECTIONS, LIGHT_INTENSITIES):
        to_light = np.asarray(direction, dtype=np.float64) / np.linalg.norm(direction)
        facing = normals @ to_light  # [K]
        light += intensity * np.clip(facing, 0.0, None)
        half = to_light + towards_viewer
        half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-12)
        specular = np.clip(np.sum(normals * half, axis=1), 0.0, None) ** SHININESS
        highlight += intensity * np.where(facing > 0, specular, 0.0)
    colour = base_colour(points) * light[:, None] + SPECULAR * highlight[:, None]
    return np.clip(colour, 0.0, 1.0)


def render_mesh_views(mesh: trimesh.Trimesh, poses: np.ndarray, intrinsics) -> np.ndarray:
    """Ray-cast RGBA pictures of `mesh` from each camera (see the module docstring for shading).

    Args:
        mesh: a triangle mesh (with at least one face).
        poses: [N, 4, 4] camera-to-world matrices (OpenGL convention).
        intrinsics: an `inrcore.geometry.cameras.Intrinsics` (width W, height H, fx, fy, cx, cy).
    Returns:
        images [N, H, W, 4] uint8 RGBA: alpha = 255 x the fraction of a pixel's 2 x 2 rays that
        hit the mesh, RGB their mean colour (0 where no ray hits).
    """
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise ValueError(f"poses must have shape [N, 4, 4], got {list(poses.shape)}")
    if len(mesh.faces) == 0:
        raise ValueError("the mesh has no faces to render")
    height, width = intrinsics.height, intrinsics.width
    samples = SUPERSAMPLE * SUPERSAMPLE
    camera_directions = pixel_ray_directions(intrinsics).reshape(-1, 3)  # [H*W*S, 3]
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64)
    face_normals = np.asarray(mesh.face_normals, dtype=np.float64)  # [F, 3]
    corner_normals = _corner_normals(mesh)  # [F, 3, 3]

    images = np.zeros((len(poses), height, width, 4), dtype=np.uint8)
    for view, pose in enumerate(poses):
        directions = camera_directions @ pose[:3, :3].T
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)  # [R, 3]
        origins = np.broadcast_to(pose[:3, 3], directions.shape)
        locations, ray_index, face_index = mesh.ray.intersects_location(
            ray_origins=origins, ray_directions=directions, multiple_hits=False
        )
        if len(ray_index) == 0:
            continue
        ray_dirs = directions[ray_index]  # [K, 3]
        triangles = vertices[faces[face_index]]  # [K, 3, 3]
        barycentric = trimesh.triangles.points_to_barycentric(triangles, locations)  # [K, 3]
        normals = np.einsum("kj,kjc->kc", barycentric, corner_normals[face_index])
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        flat = ~(length[:, 0] > 1e-12) | ~np.isfinite(length[:, 0])
        normals = np.where(flat[:, None], face_normals[face_index], normals / np.where(length > 0, length, 1.0))
        # Two-sided: turn the normal to the camera's side of the triangle.
        side = np.where(np.sum(face_normals[face_index] * ray_dirs, axis=1) > 0, -1.0, 1.0)
        normals *= side[:, None]
        colour = shade_surface(locations, normals, -ray_dirs)  # [K, 3]

        premultiplied = np.zeros((height * width * samples, 3))
        hit = np.zeros(height * width * samples)
        premultiplied[ray_index] = colour
        hit[ray_index] = 1.0
        coverage = hit.reshape(height, width, samples).sum(axis=2)  # [H, W]
        summed = premultiplied.reshape(height, width, samples, 3).sum(axis=2)  # [H, W, 3]
        rgb = summed / np.maximum(coverage, 1.0)[..., None]
        images[view, ..., :3] = np.rint(255.0 * np.clip(rgb, 0.0, 1.0)).astype(np.uint8)
        images[view, ..., 3] = np.rint(255.0 * coverage / samples).astype(np.uint8)
    return images


def _corner_normals(mesh: trimesh.Trimesh) -> np.ndarray:
    """Per face corner: the vertex normal, or the face normal across a crease -> [F, 3 corners, 3]."""
    face_normals = np.asarray(mesh.face_normals, dtype=np.float64)  # [F, 3]
    corners = np.asarray(mesh.vertex_normals, dtype=np.float64)[np.asarray(mesh.faces)]  # [F, 3, 3]
    smooth = np.sum(corners * face_normals[:, None, :], axis=2) >= math.cos(math.radians(CREASE_DEGREES))
    return np.where(smooth[..., None], corners, face_normals[:, None, :])


def scene_from_mesh(mesh_path: str | os.PathLike, folder: str | os.PathLike,
                    config: MeshSceneConfig | None = None, source: str | None = None) -> Path:
    """Render a mesh file into a Blender-layout scene folder with "train" and "test" splits.

    The mesh is loaded with `inrcore.geometry.meshes.load_mesh`, centred and scaled into
    [-extent, extent]^3 (`normalise_mesh`), and rendered (`render_mesh_views`) from
    config.n_train cameras (`camera_poses_on_sphere` with config.seed) and config.n_test
    others (seed + 1: the spiral turned by another angle, so no test camera is a training
    one), size x size pixels over camera_angle_x. `write_scene` writes the folder atomically;
    its transforms files also hold "source" (the mesh path), "extent", "radius" and
    "normalisation" ({"center", "scale"} mapping original to scene coordinates).

    Args:
        config: the scene's settings; None: `MeshSceneConfig()`'s defaults.
        source: what the transforms files give as "source" (default: `mesh_path`), e.g. the URL a
            mesh was copied from.
    Returns:
        the scene folder, as a Path.
    Raises:
        ShapeError: the mesh file is missing or unusable (the message names the file).
    """
    config = MeshSceneConfig() if config is None else config
    mesh, normalisation = normalise_mesh(load_mesh(mesh_path), config.extent)
    intrinsics = Intrinsics.from_camera_angle_x(config.size, config.size, config.camera_angle_x)
    cameras = {"train": camera_poses_on_sphere(config.n_train, config.radius, config.upper_hemisphere, config.seed)}
    if config.n_test > 0:
        cameras["test"] = camera_poses_on_sphere(config.n_test, config.radius, config.upper_hemisphere,
                                                 config.seed + 1)
    splits = {name: (render_mesh_views(mesh, poses, intrinsics), poses) for name, poses in cameras.items()}
    extra = {"source": os.fspath(mesh_path) if source is None else source, "extent": config.extent,
             "radius": config.radius, "normalisation": normalisation.to_dict()}
    return write_scene(folder, splits, config.camera_angle_x, config.near, config.far, extra=extra)
