import json

import pytest

from inrcore.errors import ConfigError
from inrcore.geometry.settings import GridConfig, SamplingConfig
from inrcore.nerf.settings import MeshSceneConfig, NerfPicturesConfig, NerfPipelineConfig
from inrcore.sdf.settings import PipelineConfig, TrainConfig
from inrcore.settings import config_from_dict, config_replace, config_to_dict, fingerprint


def test_round_trip_through_json_is_identity():
    config = PipelineConfig(sampling=SamplingConfig(near_sigmas=(0.02, 0.2)), alias="best")
    again = config_from_dict(PipelineConfig, json.loads(json.dumps(config_to_dict(config))))
    assert again == config
    assert again.sampling.near_sigmas == (0.02, 0.2)


def test_missing_keys_take_defaults_and_ints_become_floats():
    config = config_from_dict(TrainConfig, {"steps": 10, "lr": 1})
    assert config.steps == 10 and config.lr == 1.0 and isinstance(config.lr, float)
    assert config.batch_surface == TrainConfig().batch_surface


def test_unknown_key_is_named_with_its_source():
    with pytest.raises(ConfigError, match=r"demo.yaml: config.training: unknown key\(s\) step;"):
        config_from_dict(PipelineConfig, {"training": {"step": 10}}, "demo.yaml: config")


@pytest.mark.parametrize("data, message", [
    ({"training": {"steps": "many"}}, r"config.training.steps: expected an integer, got 'many'"),
    ({"training": {"steps": 0}}, r"config.training.steps: must be positive, got 0"),
    ({"training": {"steps": True}}, r"expected an integer"),
    ({"grid": {"resolution": 1}}, r"config.grid.resolution: must be at least 2"),
    ({"sampling": {"extent": 1.5}}, r"config.sampling.extent: must be in \(0, 1\]"),
    ({"sampling": {"near_sigmas": 0.1}}, r"config.sampling.near_sigmas: expected a list"),
    ({"training": {"device": "tpu"}}, r"config.training.device: expected auto, cpu or cuda"),
    ({"alias": "latest"}, r"config.alias: 'latest' is not a usable registry alias"),
    ({"training": {"network": {"kind": "relu-pe", "width": 32, "frequencies": 6}}},
     r"config.training.network.width: relu-pe with 3 layers needs width above the encoded input's 39 features"),
    ({"training": {"network": {"kind": "relu"}}},
     r"config.training.network.kind: expected one of siren, igr, relu-pe, idf, got 'relu'"),
])
def test_bad_values_raise_clear_errors(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(PipelineConfig, data, "config")


def test_replace_applies_nested_overrides_only():
    base = PipelineConfig()
    new = config_replace(base, {"training": {"steps": 7}, "grid": {"resolution": 33}})
    assert new.training.steps == 7 and new.grid.resolution == 33
    assert new.training.lr == base.training.lr and new.sampling == base.sampling


def test_fingerprint_is_stable_and_sensitive():
    assert fingerprint("x", GridConfig()) == fingerprint("x", GridConfig())
    assert fingerprint("x", GridConfig()) != fingerprint("x", GridConfig(resolution=129))
    assert fingerprint("x", GridConfig()) != fingerprint("y", GridConfig())
    assert len(fingerprint("x")) == 16


def test_mesh_scene_config_defaults_and_round_trip():
    config = config_from_dict(MeshSceneConfig, {"size": 16, "radius": 3})
    assert config.size == 16 and config.radius == 3.0 and config.n_test == 20
    assert config.camera_angle_x == 0.6911112070083618 and (config.near, config.far) == (2.0, 6.0)
    assert config_from_dict(MeshSceneConfig, config_to_dict(config)) == config
    assert config_from_dict(MeshSceneConfig, {"n_test": 0}).n_test == 0


@pytest.mark.parametrize("data, message", [
    ({"size": 0}, r"scene.size: must be positive, got 0"),
    ({"n_train": 0}, r"scene.n_train: must be positive"),
    ({"n_test": -1}, r"scene.n_test: must be zero or more"),
    ({"camera_angle_x": 3.2}, r"scene.camera_angle_x: must be in \(0, pi\)"),
    ({"extent": 0}, r"scene.extent: must be positive"),
    ({"radius": 1.5}, r"scene.radius: must exceed sqrt\(3\) x extent = 1.732"),
    ({"near": 6.0}, r"scene.near, far: need 0 <= near < far"),
    ({"near": -1.0}, r"scene.near, far"),
    ({"upper_hemisphere": 1}, r"scene.upper_hemisphere: expected true or false"),
])
def test_mesh_scene_config_bad_values(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(MeshSceneConfig, data, "scene")


def test_nerf_pictures_config_defaults_and_the_pipeline_section():
    assert NerfPicturesConfig() == NerfPicturesConfig(test_views=None, shown_views=4, turntable_frames=24,
                                                      turntable_size=128, seconds=None)
    pipeline = config_from_dict(NerfPipelineConfig, {"pictures": {"turntable_frames": 0, "seconds": 20}})
    assert pipeline.pictures == NerfPicturesConfig(turntable_frames=0, seconds=20.0)


@pytest.mark.parametrize("data, message", [
    ({"test_views": 0}, r"pictures.test_views: must be positive \(or null for every test view\), got 0"),
    ({"shown_views": 0}, r"pictures.shown_views: must be positive, got 0"),
    ({"turntable_size": -8}, r"pictures.turntable_size: must be positive, got -8"),
    ({"turntable_frames": -1}, r"pictures.turntable_frames: must be zero or more, got -1"),
    ({"seconds": 0}, r"pictures.seconds: must be positive \(or null for the default\), got 0"),
    ({"turntable": 3}, r"pictures: unknown key\(s\) turntable"),
])
def test_nerf_pictures_config_bad_values(data, message):
    with pytest.raises(ConfigError, match=message):
        config_from_dict(NerfPicturesConfig, data, "pictures")


def test_budget_progress_by_steps_or_the_nearer_time_budget():
    from inrcore.settings import budget_progress

    assert budget_progress(25, 999.0, 100, None) == 0.25  # no time budget: steps alone
    assert budget_progress(25, 30.0, 100, 60.0) == 0.5  # the clock is nearer its budget
    assert budget_progress(50, 6.0, 100, 60.0) == 0.5
    assert budget_progress(10, 120.0, 100, 60.0) == 1.0  # capped at 1


def test_fingerprints_are_those_of_the_settings_before_pydantic():
    # Hashes computed by the dataclass settings of commit 6b30e78 (inrcore/config.py): stores and
    # registry tags made then are still found.
    from inrcore.nerf.settings import NerfPipelineConfig
    from inrcore.settings import result_settings

    assert fingerprint("grid", "fp", GridConfig()) == "0f8d768173a76d73"
    assert fingerprint("x", PipelineConfig()) == "d33e29cade58e4a3"
    assert fingerprint("x", NerfPipelineConfig()) == "209ea82fdc658496"
    assert fingerprint("field", "s", result_settings(TrainConfig())) == "63dbc5e5203d7808"


def test_execution_only_settings_and_switched_off_sections_leave_results_settings():
    from inrcore.nerf.settings import NerfConfig
    from inrcore.sdf.settings import IsoPointsConfig
    from inrcore.settings import execution_only_fields, result_settings

    assert execution_only_fields(TrainConfig) == ("shapes_per_batch",)
    assert execution_only_fields(NerfConfig) == ("device",)
    assert execution_only_fields(GridConfig) == ()
    off = result_settings(TrainConfig(shapes_per_batch=4))
    assert "shapes_per_batch" not in off and "isopoints" not in off and off["steps"] == 2000
    on = result_settings(TrainConfig(isopoints=IsoPointsConfig(enabled=True, n_points=300)))
    assert on["isopoints"]["n_points"] == 300 and on["network"]["kind"] == "siren"
    assert "device" not in result_settings(NerfConfig()) and result_settings(NerfConfig())["model"] == "ngp"


def test_settings_are_validated_when_built_in_code_too():
    with pytest.raises(ValueError, match="greater than 0"):
        GridConfig(chunk=0)
    with pytest.raises(ValueError):
        SamplingConfig(near_sigmas=(0.1, -0.1))
    assert GridConfig(bound=2).bound == 2.0 and isinstance(GridConfig(bound=2).bound, float)


def test_merge_overrides_merges_nested_sections_and_leaves_its_inputs_alone():
    from inrcore.settings import merge_overrides

    base = {"training": {"steps": 10, "network": {"kind": "siren", "width": 64}}, "alias": "a"}
    top = {"training": {"network": {"width": 32}}, "alias": "b", "grid": {"resolution": 9}}
    merged = merge_overrides(base, top)
    assert merged == {"training": {"steps": 10, "network": {"kind": "siren", "width": 32}}, "alias": "b",
                      "grid": {"resolution": 9}}
    assert base["training"]["network"]["width"] == 64 and top == {"training": {"network": {"width": 32}},
                                                                   "alias": "b", "grid": {"resolution": 9}}


def test_a_setting_of_several_types_says_each_in_one_line():
    from inrcore.errors import ConfigError
    from inrcore.sdf.settings import PipelineConfig, TrainConfig
    from inrcore.settings import config_replace

    assert config_replace(TrainConfig(), {"shapes_per_batch": "auto"}, "m.yaml").shapes_per_batch == "auto"
    for bad, said in ((0, "a positive integer"), ("many", "an integer"), (2.5, "an integer")):
        with pytest.raises(ConfigError) as caught:
            config_replace(PipelineConfig(), {"training": {"shapes_per_batch": bad}}, "m.yaml")
        assert str(caught.value) == f"m.yaml.training.shapes_per_batch: expected {said} or one of auto, got {bad!r}"
