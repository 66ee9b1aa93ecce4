import pytest

from inrcore.sdf.methods import METHODS, method_overrides
from inrcore.sdf.settings import PipelineConfig
from inrcore.settings import config_replace, merge_overrides


def test_every_method_gives_a_valid_config_of_its_kind():
    for method in METHODS:
        config = config_replace(PipelineConfig(), method_overrides(method), "method")
        assert config.training.network.kind == method
    igr = config_replace(PipelineConfig(), method_overrides("igr"), "method").training
    assert (igr.lr, igr.lr_final) == (1e-3, 1e-5)
    siren = config_replace(PipelineConfig(), method_overrides("siren"), "method").training
    assert (siren.lr, siren.lr_final) == (2e-4, 2e-5)


def test_user_settings_win_over_the_method_and_nothing_is_shared():
    merged = method_overrides("relu-pe", {"training": {"lr": 5e-4, "network": {"frequencies": 0}}, "grid": {"resolution": 64}})
    assert merged == {"training": {"network": {"kind": "relu-pe", "frequencies": 0}, "lr": 5e-4, "lr_final": 1e-5},
                      "grid": {"resolution": 64}}
    merged["training"]["network"]["kind"] = "changed"
    assert method_overrides("relu-pe")["training"]["network"]["kind"] == "relu-pe"
    assert merge_overrides({"a": {"b": 1}}, {"a": 2}) == {"a": 2}


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="unknown method 'nerf'; known: siren, idf, igr, relu-pe"):
        method_overrides("nerf")
