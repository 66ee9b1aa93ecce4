"""A trained DeepSDF shape space as one file, its members as fields, and what is done with one shape:
reconstruction by code fitting, completion from a scan, meshing, interpolation.

The file is an ordinary field file (`inrcore.fields.weights.save_field`): the decoder's layer list
(input [L + 3]), its plain weights, the codes [S, L] under the name "codes", and metadata with
kind "deepsdf-shape-space" and the shape ids in the codes' order. `ShapeSpace.member` gives the
member of a shape id as a plain 3 -> 1 network (`inrcore.shapespace.decoder.member_network`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
import trimesh

from inrcore.errors import ConfigError
from inrcore.fields.networks import NetworkSpec
from inrcore.fields.weights import load_field, save_field
from inrcore.shapespace.autodecoder import AutoDecoderResult, CodeFit, TargetSamples, fit_codes, interpolated_codes
from inrcore.shapespace.decoder import member_network
from inrcore.shapespace.settings import CodeFitConfig, ShapeMeshConfig


SPACE_KIND = "deepsdf-shape-space"
CODES = "codes"


@dataclass(eq=False)
class ShapeSpace:
    """The decoder (spec, plain weights), codes [S, L], their shape ids and the file's metadata."""

    spec: NetworkSpec
    params: dict[str, torch.Tensor]
    codes: torch.Tensor
    shape_ids: tuple[str, ...]
    metadata: dict[str, Any]

    def code_of(self, shape_id: str) -> torch.Tensor:
        if shape_id not in self.shape_ids:
            known = ", ".join(self.shape_ids[:8]) + (" ..." if len(self.shape_ids) > 8 else "")
            raise ConfigError(f"shape {shape_id!r} is not in this shape space ({len(self.shape_ids)} shapes: {known})")
        return self.codes[self.shape_ids.index(shape_id)]

    def member(self, shape_id: str) -> tuple[NetworkSpec, dict[str, torch.Tensor]]:
        """The member of a training shape as a plain field."""
        return member_network(self.spec, self.params, self.code_of(shape_id))

    def member_of_code(self, code: torch.Tensor) -> tuple[NetworkSpec, dict[str, torch.Tensor]]:
        return member_network(self.spec, self.params, code)


def is_shape_space(metadata: dict) -> bool:
    return isinstance(metadata, dict) and metadata.get("kind") == SPACE_KIND


def save_shape_space(path, result: AutoDecoderResult, shape_ids, metadata: Optional[dict] = None) -> Path:
    """Write a trained space (atomically) to `path` (.safetensors)."""
    if len(shape_ids) != len(result.codes):
        raise ValueError(f"{len(shape_ids)} shape ids for {len(result.codes)} codes")
    meta = {**(metadata or {}), "kind": SPACE_KIND, "shape_ids": list(shape_ids), "latent": int(result.codes.shape[1])}
    return save_field(path, result.spec, {**result.params, CODES: result.codes}, meta)


def shape_space_of(spec, params: dict, metadata: dict, source: str = "model") -> ShapeSpace:
    """A ShapeSpace from a loaded field file's parts; ConfigError naming `source` when it is not one."""
    if not is_shape_space(metadata) or CODES not in params:
        raise ConfigError(f"{source}: not a DeepSDF shape space (inr deepsdf train writes one)")
    weights = {k: v for k, v in params.items() if k != CODES}
    return ShapeSpace(tuple(spec), weights, params[CODES], tuple(metadata["shape_ids"]), dict(metadata))


def load_shape_space(path) -> ShapeSpace:
    spec, params, metadata = load_field(path)
    return shape_space_of(spec, params, metadata, str(path))


def mesh_field(spec: NetworkSpec, params: dict, config: ShapeMeshConfig, device: torch.device) -> tuple[trimesh.Trimesh, dict]:
    """The zero set of a plain field over [-bound, bound]^3 by MISE or dense marching cubes at
    start · 2^levels; stats as the meshers give them."""
    if config.method == "mise":
        from inrcore.queries.mise import mise_field_mesh

        return mise_field_mesh(spec, params, start=config.start, levels=config.levels, bound=config.bound, device=device)
    from inrcore.queries.rangemesh import dense_mesh

    return dense_mesh(spec, params, config.start * 2 ** config.levels, bound=config.bound, device=device)


def fit_members(space: ShapeSpace, targets: list[TargetSamples], config: CodeFitConfig,
                device: torch.device) -> CodeFit:
    """Codes [B, L] fitted to the targets (decoder frozen, each started as `config.init` says: by
    default at the nearest of the space's codes), their final losses, the seconds taken and the rows of
    the codes they started at (`start_ids` names them)."""
    return fit_codes(space.spec, space.params, targets, config, device, candidates=space.codes)


def start_ids(space: ShapeSpace, fit: CodeFit) -> Optional[list[str]]:
    """The training shape each fitted code started at; None when they started at random."""
    return None if fit.starts is None else [space.shape_ids[k] for k in fit.starts]


def interpolation_meshes(space: ShapeSpace, first: str, second: str, steps: int, config: ShapeMeshConfig,
                         device: torch.device) -> list[trimesh.Trimesh]:
    """Meshes of the members on the straight line between two training shapes' codes, ends included."""
    codes = interpolated_codes(space.code_of(first), space.code_of(second), steps)
    return [mesh_field(*space.member_of_code(code), config, device)[0] for code in codes]
