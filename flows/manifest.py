"""Dataset manifests: which shape files make a collection, and the pipeline settings for it.

A manifest is a mapping, read from a YAML file by `read_manifest` (or made for a folder of shapes):

    name: demo                       # required: names the MLflow experiment and registry models
    description: three small meshes  # optional
    shapes:                          # file paths relative to the manifest, or {id, path}
      - meshes/bunny.obj
      - {id: cow, path: meshes/cow.obj, split: test, family: animal}  # split: train (default) or test
    glob: meshes/*.ply               # optional, a pattern or a list of patterns
    config:                          # optional overrides of CollectionConfig (the SDF flow)
      training: {steps: 1500}
      skeleton: {enabled: true}      # the skeleton stage, off by default
    nerf:                            # optional overrides of NerfPipelineConfig (the NeRF flow)
      scene: {size: 100}
      training: {model: ngp, seconds: 600}
    shapespace:                      # optional overrides of ShapeSpaceConfig (the shape-space flow)
      training: {seconds: 1200}
    generator: {...}                 # informational: how `inr generate` made the collection

Splits matter to the shape-space flow (it learns from "train" and reconstructs "test"); the other
flows use every shape. A folder is read recursively when it holds no shape file itself (ShapeNet-like
layouts, `<category>/<model>/models/model_normalized.obj` or `<category>/<model>.obj`): ids come from
the relative path, and a model listed in a `test.lst` beside it (the Occupancy Networks layout) is a
test shape; without such lists a fifth of the shapes, chosen by a hash of their id, are.

Shapes are mesh files (MESH_SUFFIXES) or oriented point clouds (.xyz, .npz, and .ply files
without faces; see `inrcore.sdf.fitshape`). A listed file that is missing is not a manifest error: it fails that shape alone, so the
rest of the collection still runs. For the NeRF flow an entry may also be a scene folder
(Blender format: `transforms_train.json` and its images), used as it is.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

from inrcore.errors import ConfigError
from inrcore.geometry.pointclouds import POINT_SUFFIXES
from inrcore.nerf.settings import NerfPipelineConfig
from inrcore.settings import config_from_dict
from inrcore.shapespace.settings import ShapeSpaceConfig
from inrcore.skeleton.settings import CollectionConfig
from tasks import locations as storage


MESH_SUFFIXES = (".obj", ".ply", ".off", ".stl", ".glb")
SHAPE_SUFFIXES = MESH_SUFFIXES + tuple(s for s in POINT_SUFFIXES if s not in MESH_SUFFIXES)


SPLITS = ("train", "test")


@dataclass(frozen=True)
class ShapeEntry:
    shape_id: str
    path: str
    split: str = "train"
    family: str = ""


@dataclass(frozen=True)
class DatasetManifest:
    name: str
    shapes: tuple[ShapeEntry, ...]
    config: CollectionConfig = field(default_factory=CollectionConfig)
    nerf: NerfPipelineConfig = field(default_factory=NerfPipelineConfig)
    shapespace: ShapeSpaceConfig = field(default_factory=ShapeSpaceConfig)
    description: str = ""
    source: str = ""

    def split(self, name: str) -> tuple[ShapeEntry, ...]:
        """The shapes of split `name` ("train" or "test"), in manifest order."""
        return tuple(s for s in self.shapes if s.split == name)


_ID = re.compile(r"[^A-Za-z0-9_-]+")
ENTRY_KEYS = frozenset({"id", "path", "split", "family"})


MAX_NAME = 100  # characters of a dataset name or shape id: a path part on every store
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,%d}" % (MAX_NAME - 1))  # never "." or "..": no leading dot
MAX_MANIFEST_BYTES = 64 * 2**20  # a manifest of 100k shapes is about 10 MB


def shape_id_for(path: str) -> str:
    """A registry- and store-safe id from a file name: its stem with other characters as '_' (at most
    MAX_NAME characters)."""
    return (_ID.sub("_", Path(path).stem).strip("_") or "shape")[:MAX_NAME]


def manifest_from_dict(data: Any, source: str, base_dir: str | Path | None = None) -> DatasetManifest:
    """Validate a manifest mapping; paths are resolved against `base_dir` (default: source's folder)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a manifest must be a mapping with 'name' and 'shapes' or 'glob'")
    allowed = {"name", "description", "shapes", "glob", "config", "nerf", "shapespace", "generator"}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {', '.join(map(str, unknown))}; expected some of {', '.join(sorted(allowed))}")
    name = data.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(f"{source}: 'name' must be a word of at most {MAX_NAME} letters, digits, '.', '_' or "
                          f"'-' starting with a letter, digit or '_' (it names the run folder), got {name!r}")
    if base_dir is not None:
        base = base_dir if storage.is_url(base_dir) else Path(base_dir)
    else:
        base = posixpath.dirname(str(source)) if storage.is_url(source) else Path(source).resolve().parent

    entries: list[ShapeEntry] = []
    shapes = data.get("shapes") or []
    if not isinstance(shapes, list):
        raise ConfigError(f"{source}: 'shapes' must be a list")
    for i, item in enumerate(shapes):
        if isinstance(item, str):
            entries.append(ShapeEntry(shape_id_for(item), str(_resolve(base, item))))
        elif isinstance(item, Mapping) and isinstance(item.get("path"), str) and set(item) <= ENTRY_KEYS:
            shape_id = item.get("id", shape_id_for(item["path"]))
            if not isinstance(shape_id, str) or _ID.search(shape_id) or not shape_id or len(shape_id) > MAX_NAME:
                raise ConfigError(f"{source}: shapes[{i}].id must be at most {MAX_NAME} letters, digits, '_' or '-', "
                                  f"got {shape_id!r}")
            split, family = item.get("split", "train"), item.get("family", "")
            if split not in SPLITS:
                raise ConfigError(f"{source}: shapes[{i}].split must be one of {', '.join(SPLITS)}, got {split!r}")
            if not isinstance(family, str):
                raise ConfigError(f"{source}: shapes[{i}].family must be text, got {family!r}")
            entries.append(ShapeEntry(shape_id, str(_resolve(base, item["path"])), split, family))
        else:
            raise ConfigError(f"{source}: shapes[{i}] must be a path or a mapping with 'path' (and optional "
                              f"{', '.join(sorted(ENTRY_KEYS - {'path'}))}), got {item!r}")

    patterns = data.get("glob") or []
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise ConfigError(f"{source}: 'glob' must be a pattern or a list of patterns")
    for pattern in patterns:
        matches = [p for p in storage.glob(str(_resolve(base, pattern)))
                   if Path(p).suffix.lower() in SHAPE_SUFFIXES]
        if not matches:
            raise ConfigError(f"{source}: glob {pattern!r} matches no mesh or point-cloud file "
                              f"({', '.join(SHAPE_SUFFIXES)}) under {base}")
        entries.extend(ShapeEntry(shape_id_for(p), p) for p in matches)

    if not entries:
        raise ConfigError(f"{source}: the manifest lists no shapes (give 'shapes' or 'glob')")
    seen: dict[str, str] = {}
    for entry in entries:
        if entry.shape_id in seen:
            raise ConfigError(f"{source}: shape id {entry.shape_id!r} is used by both {seen[entry.shape_id]} "
                              f"and {entry.path}; give one of them an explicit 'id'")
        seen[entry.shape_id] = entry.path

    config = config_from_dict(CollectionConfig, data.get("config"), f"{source}: config")
    nerf = config_from_dict(NerfPipelineConfig, nerf_section_of(data.get("nerf")), f"{source}: nerf")
    shapespace = config_from_dict(ShapeSpaceConfig, data.get("shapespace"), f"{source}: shapespace")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{source}: 'description' must be text")
    return DatasetManifest(name=name, shapes=tuple(entries), config=config, nerf=nerf, shapespace=shapespace,
                           description=description, source=str(source))


def nerf_section_of(section):
    """A manifest's `nerf` section with keys of earlier versions moved to where they are now:
    `turntable_frames` (now `pictures.turntable_frames`). Anything else is returned as it is."""
    if not isinstance(section, dict) or "turntable_frames" not in section:
        return section
    moved = {k: v for k, v in section.items() if k != "turntable_frames"}
    pictures = moved.get("pictures") or {}
    if isinstance(pictures, dict):
        moved["pictures"] = {"turntable_frames": section["turntable_frames"], **pictures}
    return moved


def manifest_for_folder(folder: str | Path) -> DatasetManifest:
    """A manifest of every mesh and point-cloud file directly in `folder`, named after the folder; a
    folder with no such file is searched recursively (`shapes_in_tree`)."""
    folder = Path(folder)
    patterns = [f"*{suffix}" for suffix in SHAPE_SUFFIXES]
    present = [p for p in patterns if any(folder.glob(p))]
    name = (_ID.sub("_", folder.resolve().name).strip("_") or "collection")[:MAX_NAME]
    if not present:
        shapes = shapes_in_tree(folder)
        if not shapes:
            raise ConfigError(f"{folder}: the folder holds no mesh or point-cloud file ({', '.join(SHAPE_SUFFIXES)}), "
                              "nor do its subfolders")
        return manifest_from_dict({"name": name, "shapes": shapes}, source=str(folder), base_dir=folder)
    return manifest_from_dict({"name": name, "glob": present},
                              source=str(folder), base_dir=folder)


def shapes_in_tree(folder: Path) -> list[dict]:
    """Manifest entries for every shape file below `folder`, ShapeNet-like: the id is the relative
    path with "models/model_normalized" (ShapeNet v2's file) dropped, joined by '_'; the split is
    "test" when the model's folder or file stem is listed in a `test.lst` file in any folder above
    it (below `folder`), else a fifth of the ids by hash (`hash_split`)."""
    entries = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SHAPE_SUFFIXES):
        relative = path.relative_to(folder)
        parts = list(relative.with_suffix("").parts)
        if parts[-2:] == ["models", "model_normalized"]:
            parts = parts[:-2]
        shape_id = _ID.sub("_", "_".join(parts)).strip("_") or "shape"
        listed = None
        for parent in relative.parents:
            lst = folder / parent / "test.lst"
            if lst.is_file():
                names = set(lst.read_text().split())
                listed = parts[-1] in names or relative.parts[len(parent.parts)] in names
                break
        split = ("test" if listed else "train") if listed is not None else hash_split(shape_id)
        entries.append({"id": shape_id, "path": str(relative), "split": split, "family": parts[0] if len(parts) > 1 else ""})
    return entries


def hash_split(shape_id: str, test_fraction: float = 0.2) -> str:
    """"test" for about `test_fraction` of ids, chosen by a hash of the id (stable across runs and machines)."""
    digest = int(hashlib.sha1(shape_id.encode()).hexdigest()[:8], 16)
    return "test" if digest / 2**32 < test_fraction else "train"


def _resolve(base, path: str):
    """A shape path or URL of a manifest entry: URLs and absolute paths as they are, others against the
    manifest's folder (a path or a URL)."""
    if storage.is_url(path):
        return path
    if storage.is_url(base):
        return storage.join(base, path)
    p = Path(path).expanduser()
    return p if p.is_absolute() else base / p


def read_manifest(path: str) -> DatasetManifest:
    """A manifest from a YAML file (a path or URL, `tasks.locations`), or a folder of mesh files; errors
    name the file and the problem. Shape paths in a manifest at a URL are relative to its folder there."""
    if storage.is_url(path):
        try:
            text = storage.read_bytes(path)
        except FileNotFoundError:
            raise ConfigError(f"{path}: manifest file does not exist") from None
        size = len(text)
    else:
        p = Path(path)
        if p.is_dir():
            return manifest_for_folder(p)
        if not p.is_file():
            raise ConfigError(f"{path}: manifest file does not exist")
        size = p.stat().st_size
        text = p.read_bytes() if size <= MAX_MANIFEST_BYTES else b""
    if size > MAX_MANIFEST_BYTES:
        raise ConfigError(f"{path}: a manifest of {size / 2**20:.0f} MiB is larger than the "
                          f"{MAX_MANIFEST_BYTES // 2**20} MiB allowed; use 'glob' patterns or a folder instead")
    try:
        data = yaml.safe_load(text.decode())  # plain YAML only: tags such as !!python/object are refused
    except yaml.constructor.ConstructorError as exc:
        raise ConfigError(f"{path}: not plain YAML (a tag it will not construct, line "
                          f"{exc.problem_mark.line + 1 if exc.problem_mark else '?'}): {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a manifest") from None
    return manifest_from_dict(data, source=str(path))
