"""Reading dataset manifests from YAML files (or a folder of meshes)."""

from __future__ import annotations

from pathlib import Path

import yaml

from inrcore.errors import ConfigError
from inrcore.manifest import DatasetManifest, manifest_for_folder, manifest_from_dict


def read_manifest(path: str) -> DatasetManifest:
    """A manifest from a YAML file, or a folder of mesh files; errors name the file and the problem."""
    p = Path(path)
    if p.is_dir():
        return manifest_for_folder(p)
    if not p.is_file():
        raise ConfigError(f"{path}: manifest file does not exist")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file") from None
    return manifest_from_dict(data, source=str(path))
