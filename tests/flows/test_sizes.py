"""Sizes refused up front: the figures by hand, the limit from the environment, and `inr run` refusing a
grid of 100000^3 before anything starts."""

import subprocess
import sys

import pytest

from flows.manifest import manifest_from_dict
from flows.sizes import GB, check_sizes, memory_limit, needs
from inrcore.errors import ConfigError
from inrcore.nerf.settings import NerfPipelineConfig
from inrcore.settings import config_from_dict
from inrcore.shapespace.settings import ShapeSpaceConfig
from inrcore.skeleton.settings import CollectionConfig


def test_the_grid_and_samples_by_hand():
    config = config_from_dict(CollectionConfig, {"grid": {"resolution": 100},
                                                 "sampling": {"n_surface": 10, "n_near": 20, "n_uniform": 5}})
    figures = dict(needs("config", config))
    assert figures["grid.resolution = 100"] == 100 ** 3 * 4
    assert figures["sampling.n_surface + n_near + n_uniform"] == (6 * 10 + 4 * 25) * 4


def test_a_grid_of_100000_is_refused_with_its_figure():
    config = config_from_dict(CollectionConfig, {"grid": {"resolution": 100000}})
    with pytest.raises(ConfigError) as info:
        check_sizes("config", config, "m.yaml", limit=16 * GB)
    message = str(info.value)
    assert message.startswith("m.yaml: too large") and "grid.resolution = 100000 needs 4 PB" in message
    assert "(16 GB;" in message and "Nothing was started" in message


def test_the_defaults_fit_in_a_few_gigabytes():
    for section, config in (("config", CollectionConfig()), ("nerf", NerfPipelineConfig()),
                            ("shapespace", ShapeSpaceConfig())):
        check_sizes(section, config, "m.yaml", train_shapes=100, limit=2 * GB)


def test_nerf_rays_and_shape_space_samples_count_views_and_shapes():
    nerf = config_from_dict(NerfPipelineConfig, {"scene": {"size": 800, "n_train": 100, "n_test": 0}})
    assert dict(needs("nerf", nerf))["scene.n_train = 100 views of 800² rays"] == 100 * 800 ** 2 * 9 * 4
    space = config_from_dict(ShapeSpaceConfig, {"sampling": {"n_samples": 1000, "n_surface": 100, "n_occupancy": 500}})
    figure = dict(needs("shapespace", space, train_shapes=7))
    assert figure["sampling (n_samples + n_surface + n_occupancy) x 7 training shapes"] == 7 * (4000 + 600 + 2000) * 4
    with pytest.raises(ConfigError, match=r"x 7 training shapes needs 185 kB"):
        check_sizes("shapespace", space, "m.yaml", train_shapes=7, limit=100_000)


def test_the_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("INRFLOW_MEMORY_GB", "1.5")
    assert memory_limit() == 1_500_000_000
    for bad in ("lots", "-1", "0", "inf"):
        monkeypatch.setenv("INRFLOW_MEMORY_GB", bad)
        with pytest.raises(ConfigError, match="INRFLOW_MEMORY_GB must be a positive number"):
            memory_limit()
    monkeypatch.delenv("INRFLOW_MEMORY_GB")
    assert memory_limit() > GB  # this machine's memory


def test_inr_run_refuses_a_huge_grid_before_starting_anything(tmp_path):
    (tmp_path / "a.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    manifest = tmp_path / "m.yaml"
    manifest.write_text("name: huge\nshapes: [a.obj]\nconfig: {grid: {resolution: 100000}}\n")
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "flows.cli", "run", str(manifest), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert f"{manifest}: too large" in done.stderr and "grid.resolution = 100000 needs 4 PB" in done.stderr
    assert not out.exists()  # no run folder, no Prefect server, no training


def test_a_manifest_is_checked_with_its_train_split():
    data = {"name": "n", "shapes": [{"id": f"s{i}", "path": f"{i}.obj", "split": "train" if i < 3 else "test"}
                                    for i in range(5)],
            "shapespace": {"sampling": {"n_samples": 1000, "n_surface": 100, "n_occupancy": 500},
                           "mesh": {"start": 4, "levels": 0}, "scan": {"resolution": 8}, "metrics": {"n_points": 10}}}
    from flows.sizes import check_manifest_sizes

    manifest = manifest_from_dict(data, source="m.yaml", base_dir=".")
    with pytest.raises(ConfigError, match=r"x 3 training shapes"):
        check_manifest_sizes(manifest, "shapespace", limit=50_000)
    check_manifest_sizes(manifest, "shapespace", limit=100_000)  # 3 x 26.4 kB fits
    with pytest.raises(ConfigError, match=r"x 3 training shapes"):  # --set style overrides are applied first
        check_manifest_sizes(manifest, "shapespace", {"sampling": {"n_samples": 4000}}, limit=100_000)
