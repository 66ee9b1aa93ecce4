import os

import pytest
import torch

from inrcore.errors import ShapeError
from inrcore.fields.networks import init_siren_params, siren_spec
from inrcore.fields.weights import load_field, save_field


def test_round_trip_keeps_spec_params_and_metadata(tmp_path):
    spec = siren_spec(width=8, layers=1, omega_first=25.0)
    params = init_siren_params(spec, torch.Generator().manual_seed(3))
    path = save_field(tmp_path / "f" / "model.safetensors", spec, params, {"shape_id": "bunny", "scale": 2.5})
    spec2, params2, meta = load_field(path)
    assert spec2 == spec
    assert all(torch.equal(params2[k], params[k]) for k in params)
    assert meta == {"shape_id": "bunny", "scale": 2.5}
    assert os.listdir(tmp_path / "f") == ["model.safetensors"]  # no temporary file left


def test_bad_files_name_the_file(tmp_path):
    with pytest.raises(ShapeError, match="nope.safetensors: weights file does not exist"):
        load_field(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not safetensors at all")
    with pytest.raises(ShapeError, match="bad.safetensors: not a readable safetensors file"):
        load_field(bad)
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(ShapeError, match="plain.safetensors: safetensors file has no inrflow network description"):
        load_field(plain)
