"""--set KEY=VALUE items into nested overrides, by hand."""

import pytest

from flows.cli.overrides import overrides_from_set, put_override
from inrcore.errors import ConfigError


def test_dotted_keys_nest_and_values_are_read_as_yaml():
    items = ["training.lr=1e-4", "sampling.n_surface=20000", "training.network.kind=idf"]
    assert overrides_from_set(items) == {"training": {"lr": 0.0001, "network": {"kind": "idf"}},
                                         "sampling": {"n_surface": 20000}}
    assert overrides_from_set(["a=[1, 2]", "b=false", "c=x=y", " d =3", "e="]) == {
        "a": [1, 2], "b": False, "c": "x=y", "d": 3, "e": None}
    assert overrides_from_set([]) == {}


def test_an_item_without_equals_or_under_a_value_is_a_config_error_naming_it():
    with pytest.raises(ConfigError) as info:
        overrides_from_set(["training.lr=1e-4", "training.steps"])
    assert str(info.value) == "--set 'training.steps': expected KEY=VALUE, e.g. training.steps=500"
    with pytest.raises(ConfigError) as info:
        overrides_from_set(["training=3", "training.lr=1e-4"])
    assert str(info.value) == "--set training.lr: training is not a section"


def test_put_override_makes_sections_and_keeps_the_others():
    overrides = {"training": {"steps": 10}}
    put_override(overrides, "training.network.width", 64)
    put_override(overrides, "alias", "best")
    assert overrides == {"training": {"steps": 10, "network": {"width": 64}}, "alias": "best"}
