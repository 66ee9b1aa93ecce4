"""Self-describing weight files: safetensors tensors plus the field spec in its metadata
(a layer list, or a composite field's dict such as an IDF's; see `field_spec_to_json`).

Loading never executes pickled code: safetensors holds raw tensors and JSON strings only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from inrcore.errors import ShapeError
from inrcore.fields.build import field_spec_from_json, field_spec_to_json
from inrcore.fields.networks import FieldSpec
from inrcore.files import read_safetensors, write_safetensors


_SPEC_KEY = "inrflow.network"
_META_KEY = "inrflow.metadata"


def save_field(path, spec: FieldSpec, params: dict[str, torch.Tensor], metadata: dict[str, Any] | None = None) -> Path:
    """Write a field to `path` (.safetensors) atomically: a temporary file, then a rename."""
    header = {_SPEC_KEY: json.dumps(field_spec_to_json(spec)), _META_KEY: json.dumps(metadata or {})}
    return write_safetensors(path, params, header)


def load_field(path) -> tuple[FieldSpec, dict[str, torch.Tensor], dict[str, Any]]:
    """Read a field written by `save_field`: (spec, params on the CPU, metadata)."""
    path = Path(path)
    params, header = read_safetensors(path, "weights file")
    if _SPEC_KEY not in header:
        raise ShapeError(path, "safetensors file has no inrflow network description")
    try:
        spec = field_spec_from_json(json.loads(header[_SPEC_KEY]))
    except (TypeError, ValueError) as exc:
        raise ShapeError(path, f"bad network description: {exc}") from exc
    return spec, params, json.loads(header.get(_META_KEY, "{}"))
