"""Scenes of posed images (NeRF "Blender" and nerfstudio layouts): reading them, and writing them.

A scene is a folder with one `transforms_<split>.json` per split ("train", "val", "test"):

    {"camera_angle_x": 0.69, "near": 2.0, "far": 6.0,
     "frames": [{"file_path": "./train/r_0", "transform_matrix": [[...4 numbers...] x 4]}, ...]}

Conventions (those of the NeRF Blender scenes, i.e. OpenGL):
- `transform_matrix` is the 4x4 camera-to-world pose; the camera looks down its local -z, +x
  is image right and +y image up. Its rotation part must be orthonormal (|R^T R - I| <= 1e-3
  entrywise, |det R| within 1e-3 of 1) and its last row (0, 0, 0, 1).
- Intrinsics come from "camera_angle_x" (the horizontal field of view in radians; the image
  size is read from the images): fx = fy = 0.5 W / tan(0.5 camera_angle_x), cx = W / 2,
  cy = H / 2; or, nerfstudio style, from "fl_x" (and optionally "fl_y", "cx", "cy") with "w"
  and "h". nerfstudio may give those keys per frame too: a frame's values override the top
  level ones, and all frames of one split must come to one camera. "fl_x" wins over
  "camera_angle_x" when both are given. Lens distortion keys (k1, k2, p1, p2...) are ignored.
- `file_path` is relative to the scene folder, may start with "./" and may lack its extension
  (Blender: "./train/r_0" is "./train/r_0.png"; ".png" is tried, then ".jpg").
- "near" and "far" (distances along unit ray directions) default to Blender's 2 and 6.
- Images become float32 RGB in [0, 1], [H, W, 3]: RGBA is composited on a background colour
  (white by default) as rgb * a + background * (1 - a), RGB is used as is, grayscale is
  repeated into three channels. 16-bit grayscale (Pillow mode I;16 or I) is scaled by 1 / 65535.
- Downscaling by an integer k averages k x k blocks of the composited image (PIL's Image.BOX
  at an integer factor), after cropping the last W mod k columns and H mod k rows, so pixel
  (u, v) of the small image covers exactly original pixels [k u, k u + k) x [k v, k v + k) and
  the intrinsics are divided by k (`Intrinsics.downscaled`).

Everything wrong with a scene raises `SceneError` whose message starts with the offending
file (the transforms file, or the image) and says what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from PIL import Image

from inrcore.errors import SceneError
from inrcore.geometry.cameras import Intrinsics


SPLITS = ("train", "val", "test")
DEFAULT_NEAR = 2.0
DEFAULT_FAR = 6.0
IMAGE_EXTENSIONS = (".png", ".jpg")
ROTATION_TOLERANCE = 1e-3
_CAMERA_KEYS = ("camera_angle_x", "fl_x", "fl_y", "cx", "cy", "w", "h")


@dataclass(frozen=True, eq=False)
class SceneSplit:
    """One split of a scene, loaded.

    name: the split ("train", "val" or "test").
    images: [N, H, W, 3] float32 RGB in [0, 1], composited on the background colour.
    poses: [N, 4, 4] float32 camera-to-world matrices (OpenGL convention).
    intrinsics: the camera shared by all N images (H = intrinsics.height, W = intrinsics.width).
    files: the N image paths, as resolved (extension added where the transforms file left it out).
    near, far: the range of ray distances that holds the scene.
    """

    name: str
    images: np.ndarray
    poses: np.ndarray
    intrinsics: Intrinsics
    files: tuple[str, ...]
    near: float
    far: float

    def __len__(self) -> int:
        return len(self.images)


def transforms_path(folder, split: str) -> Path:
    """The transforms file of `split` in the scene `folder`: folder / transforms_<split>.json."""
    return Path(folder) / f"transforms_{split}.json"


def scene_splits(folder) -> tuple[str, ...]:
    """The splits of the scene in `folder` that have a transforms_<split>.json, in the order train, val, test."""
    return tuple(split for split in SPLITS if transforms_path(folder, split).is_file())


def load_scene_split(folder, split: str = "train", downscale: int = 1,
                     background: Sequence[float] = (1.0, 1.0, 1.0)) -> SceneSplit:
    """Read one split of a scene: its images, poses and camera (see the module docstring).

    Args:
        folder: the scene folder, holding transforms_<split>.json.
        split: which split.
        downscale: an integer k >= 1; images shrink to (W // k, H // k) by k x k box averaging.
        background: the RGB colour in [0, 1] that transparent pixels are composited on.
    Returns:
        A SceneSplit with images [N, H // k, W // k, 3] float32 and poses [N, 4, 4] float32.
    Raises:
        SceneError: missing or malformed transforms file, bad pose, missing or unreadable
            image, image of the wrong size, no focal length. The message names the file.
        ValueError: bad `downscale` or `background` arguments.
    """
    if isinstance(downscale, bool) or not isinstance(downscale, (int, np.integer)) or downscale < 1:
        raise ValueError(f"downscale must be a positive integer, got {downscale!r}")
    background = np.asarray(background, dtype=np.float64)
    if background.shape != (3,) or not np.all(np.isfinite(background)):
        raise ValueError(f"background must be three finite numbers (RGB in [0, 1]), got {background.tolist()!r}")
    folder = Path(folder)
    path = transforms_path(folder, split)
    meta = _read_transforms(path)
    frames = meta["frames"]
    near, far = _near_far(meta, path)

    poses = np.stack([_pose(frame, i, path) for i, frame in enumerate(frames)]).astype(np.float32)
    files = [_image_path(folder, frame, i, path) for i, frame in enumerate(frames)]

    intrinsics = None
    images = None
    for i, (frame, file) in enumerate(zip(frames, files)):
        rgb = _read_image(file, background)  # [H, W, 3] float32
        height, width = rgb.shape[:2]
        camera = _frame_intrinsics(meta, frame, i, path, file, width, height)
        if intrinsics is None:
            intrinsics = camera
            small = camera.downscaled(downscale) if downscale > 1 else camera
            images = np.empty((len(frames), small.height, small.width, 3), dtype=np.float32)
        elif (camera.width, camera.height) != (intrinsics.width, intrinsics.height):
            raise SceneError(file, f"image is {camera.width}x{camera.height} but frame 0's image {files[0]} is "
                                   f"{intrinsics.width}x{intrinsics.height}: all images of a split ({path}) must "
                                   "share one size")
        elif not _same_camera(camera, intrinsics):
            raise SceneError(path, f"frame {i} ({file}) has camera {_describe(camera)} but frame 0 ({files[0]}) has "
                                   f"{_describe(intrinsics)}: all frames of a split must share one camera")
        images[i] = _box_downscale(rgb, downscale)
    assert intrinsics is not None and images is not None
    if downscale > 1:
        intrinsics = intrinsics.downscaled(downscale)
    return SceneSplit(name=split, images=images, poses=poses, intrinsics=intrinsics,
                      files=tuple(str(f) for f in files), near=near, far=far)


# ----------------------------------------------------------------------------- reading helpers


def _read_transforms(path: Path) -> dict:
    """The parsed transforms file, checked to be an object with a non-empty list of frames."""
    if not path.is_file():
        problem = "transforms file not found" if not path.exists() else "transforms path is not a file"
        if not path.parent.is_dir():
            problem += f" (scene folder {path.parent} does not exist)"
        raise SceneError(path, problem)
    try:
        with open(path, "rb") as handle:
            meta = json.loads(handle.read().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SceneError(path, f"not valid JSON: {exc}") from exc
    except OSError as exc:
        raise SceneError(path, f"cannot read the transforms file: {exc}") from exc
    if not isinstance(meta, dict):
        raise SceneError(path, f"not a JSON object with \"frames\" (top level is a {type(meta).__name__})")
    if "frames" not in meta:
        raise SceneError(path, "no \"frames\" list")
    frames = meta["frames"]
    if not isinstance(frames, list):
        raise SceneError(path, f"\"frames\" is not a list (it is a {type(frames).__name__})")
    if not frames:
        raise SceneError(path, "\"frames\" is empty: the split has no images")
    for i, frame in enumerate(frames):
        if not isinstance(frame, dict):
            raise SceneError(path, f"frame {i} is not a JSON object (it is a {type(frame).__name__})")
    return meta


def _near_far(meta: Mapping[str, Any], path: Path) -> tuple[float, float]:
    """The json's "near" and "far", or Blender's 2 and 6; checked 0 <= near < far, both finite."""
    values = []
    for key, default in (("near", DEFAULT_NEAR), ("far", DEFAULT_FAR)):
        value = meta.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SceneError(path, f"\"{key}\" must be a finite number, got {value!r}")
        values.append(float(value))
    near, far = values
    if not 0.0 <= near < far:
        raise SceneError(path, f"needs 0 <= near < far, got near={near}, far={far}")
    return near, far


def _pose(frame: Mapping[str, Any], i: int, path: Path) -> np.ndarray:
    """Frame i's transform_matrix as [4, 4] float64, checked to be a rigid camera-to-world pose."""
    if "transform_matrix" not in frame:
        raise SceneError(path, f"frame {i} has no \"transform_matrix\"")
    try:
        matrix = np.array(frame["transform_matrix"], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SceneError(path, f"frame {i}: \"transform_matrix\" is not a 4x4 matrix of numbers ({exc})") from exc
    if matrix.shape != (4, 4):
        raise SceneError(path, f"frame {i}: \"transform_matrix\" has shape {list(matrix.shape)}, expected 4x4")
    if not np.all(np.isfinite(matrix)):
        raise SceneError(path, f"frame {i}: \"transform_matrix\" has NaN or infinite entries")
    rotation = matrix[:3, :3]
    error = np.abs(rotation.T @ rotation - np.eye(3)).max()
    determinant = np.linalg.det(rotation)
    if error > ROTATION_TOLERANCE or abs(abs(determinant) - 1.0) > ROTATION_TOLERANCE:
        raise SceneError(path, f"frame {i}: the rotation part of \"transform_matrix\" is not orthonormal "
                               f"(max |R^T R - I| = {error:.3g}, det R = {determinant:.6g}; tolerance "
                               f"{ROTATION_TOLERANCE:g})")
    if np.abs(matrix[3] - np.array([0.0, 0.0, 0.0, 1.0])).max() > ROTATION_TOLERANCE:
        raise SceneError(path, f"frame {i}: the last row of \"transform_matrix\" is {matrix[3].tolist()}, "
                               "expected [0, 0, 0, 1]")
    return matrix


def _image_path(folder: Path, frame: Mapping[str, Any], i: int, path: Path) -> Path:
    """Frame i's image file: file_path relative to the folder, with .png or .jpg added if it has none."""
    if "file_path" not in frame:
        raise SceneError(path, f"frame {i} has no \"file_path\"")
    file_path = frame["file_path"]
    if not isinstance(file_path, str) or not file_path.strip():
        raise SceneError(path, f"frame {i}: \"file_path\" must be a non-empty string, got {file_path!r}")
    image = folder / file_path
    if image.is_file():
        return image
    for extension in IMAGE_EXTENSIONS:
        candidate = image.with_name(image.name + extension)
        if candidate.is_file():
            return candidate
    tried = ", ".join(image.name + e for e in IMAGE_EXTENSIONS)
    raise SceneError(image, f"image not found (frame {i} of {path}; also tried {tried})")


def _read_image(file: Path, background: np.ndarray) -> np.ndarray:
    """An image file as [H, W, 3] float32 RGB in [0, 1], composited on `background` if it has alpha."""
    try:
        with Image.open(file) as image:
            image.load()
            pixels = _image_to_array(image)  # [H, W, C] float64 in [0, 1], C in (1, 2, 3, 4)
    except SceneError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:  # PIL raises these for truncated or unknown files
        raise SceneError(file, f"not a readable image: {type(exc).__name__}: {exc}") from exc
    channels = pixels.shape[-1]
    if channels in (1, 2):  # grayscale (+ alpha)
        pixels = np.concatenate([np.repeat(pixels[..., :1], 3, axis=-1), pixels[..., 1:]], axis=-1)
    if pixels.shape[-1] == 4:
        alpha = pixels[..., 3:]
        pixels = pixels[..., :3] * alpha + background * (1.0 - alpha)
    return pixels.astype(np.float32)


def _image_to_array(image: Image.Image) -> np.ndarray:
    """A PIL image as [H, W, C] float64 in [0, 1] with C = 1 (L), 2 (LA), 3 (RGB) or 4 (RGBA)."""
    mode = image.mode
    if mode.startswith("I;16") or mode == "I":  # 16-bit grayscale (older Pillow opens 16-bit PNGs as "I")
        return (np.asarray(image, dtype=np.float64).clip(0, 65535) / 65535.0)[..., None]
    if mode == "P":
        has_alpha = "transparency" in image.info or image.palette is not None and image.palette.mode == "RGBA"
        image = image.convert("RGBA" if has_alpha else "RGB")
    elif mode == "PA":
        image = image.convert("RGBA")
    elif mode == "1":
        image = image.convert("L")
    elif mode not in ("L", "LA", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in mode else "RGB")
    array = np.asarray(image, dtype=np.float64) / 255.0
    return array[..., None] if array.ndim == 2 else array


def _frame_intrinsics(meta: Mapping[str, Any], frame: Mapping[str, Any], i: int, path: Path, file: Path,
                      width: int, height: int) -> Intrinsics:
    """Frame i's camera from the top-level keys overridden by the frame's, checked against its image's size."""
    keys = {key: meta[key] for key in _CAMERA_KEYS if key in meta}
    keys.update({key: frame[key] for key in _CAMERA_KEYS if key in frame})
    where = f" (frame {i})" if any(key in frame for key in _CAMERA_KEYS) else ""
    for key, value in keys.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise SceneError(path, f"\"{key}\"{where} must be a finite number, got {value!r}")
    for key, actual in (("w", width), ("h", height)):
        if key in keys and keys[key] != actual:
            raise SceneError(file, f"image is {width}x{height} (w x h) but {path} says w={keys.get('w', width)}, "
                                   f"h={keys.get('h', height)}")
    if "fl_x" in keys:
        fx = float(keys["fl_x"])
        fy = float(keys.get("fl_y", fx))
        if fx <= 0 or fy <= 0:
            raise SceneError(path, f"focal lengths must be positive, got fl_x={fx}, fl_y={fy}{where}")
    elif "camera_angle_x" in keys:
        angle = float(keys["camera_angle_x"])
        if not 0.0 < angle < math.pi:
            raise SceneError(path, f"\"camera_angle_x\"{where} must be in (0, pi) radians, got {angle}")
        fx = fy = 0.5 * width / math.tan(0.5 * angle)
        if "fl_y" in keys:
            fy = float(keys["fl_y"])
            if fy <= 0:
                raise SceneError(path, f"\"fl_y\"{where} must be positive, got {fy}")
    else:
        raise SceneError(path, f"no focal length{where}: needs \"camera_angle_x\" or \"fl_x\"")
    cx = float(keys.get("cx", width / 2.0))
    cy = float(keys.get("cy", height / 2.0))
    return Intrinsics(int(width), int(height), fx, fy, cx, cy)


def _same_camera(a: Intrinsics, b: Intrinsics) -> bool:
    """Same size, and focal lengths and principal points equal up to float noise (1e-6 relative)."""
    return (a.width, a.height) == (b.width, b.height) and all(
        math.isclose(getattr(a, k), getattr(b, k), rel_tol=1e-6, abs_tol=1e-6) for k in ("fx", "fy", "cx", "cy"))


def _describe(camera: Intrinsics) -> str:
    return (f"{camera.width}x{camera.height} fx={camera.fx:g} fy={camera.fy:g} "
            f"cx={camera.cx:g} cy={camera.cy:g}")


def _box_downscale(rgb: np.ndarray, factor: int) -> np.ndarray:
    """[H, W, 3] -> [H // k, W // k, 3]: the mean of each k x k block (the last H mod k rows, W mod k columns dropped)."""
    if factor == 1:
        return rgb
    height, width = rgb.shape[0] // factor, rgb.shape[1] // factor
    if height < 1 or width < 1:
        raise ValueError(f"cannot downscale a {rgb.shape[1]}x{rgb.shape[0]} image by {factor}")
    blocks = rgb[:height * factor, :width * factor].astype(np.float64)
    blocks = blocks.reshape(height, factor, width, factor, 3)
    return blocks.mean(axis=(1, 3)).astype(np.float32)


# ----------------------------------------------------------------------------- writing


def scene_fingerprint(folder) -> str:
    """A hash of every file of a scene folder (names and bytes), in a stable order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
