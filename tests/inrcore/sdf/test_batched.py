import dataclasses

import numpy as np
import pytest
import torch

from inrcore.fields.build import network_for
from inrcore.fields.networks import evaluate_network, stack_params, unstack_params
from inrcore.fields.settings import NetworkConfig
from inrcore.sdf.batched import fit_sdf_batch
from inrcore.sdf.settings import TrainConfig
from inrcore.sdf.training import fit_sdf


def sphere_samples(n_surface, radius, centre, seed, n_volume=300):
    """Oriented points on a sphere and uniform volume points with their true signed distances."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(n_surface, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    centre = np.asarray(centre, np.float64)
    volume = rng.uniform(-1.0, 1.0, size=(n_volume, 3))
    sdf = np.linalg.norm(volume - centre, axis=1) - radius
    return centre + radius * directions, directions, volume, sdf


THREE_SPHERES = [sphere_samples(600, 0.3, (0.0, 0.0, 0.0), 0),
                 sphere_samples(500, 0.5, (0.1, -0.2, 0.0), 1),
                 sphere_samples(700, 0.4, (-0.2, 0.1, 0.3), 2)]


def small_config(kind, **changes):
    config = TrainConfig(steps=20, batch_surface=128, batch_offsurface=128, batch_uniform=128, lr=1e-3,
                         lr_final=1e-4, log_every=5, device="cpu",
                         network=NetworkConfig(kind=kind, width=16, layers=2, frequencies=2))
    return dataclasses.replace(config, **changes)


@pytest.mark.parametrize("kind", ["siren", "igr", "relu-pe"])
def test_stacked_evaluation_equals_each_network_alone(kind):
    config = NetworkConfig(kind=kind, width=16, layers=2, frequencies=2)
    networks = [network_for(config, torch.Generator().manual_seed(seed)) for seed in range(3)]
    spec = networks[0][0]
    stacked = stack_params([params for _, params in networks])
    first_weight = next(name for name in stacked if name.endswith("_weight"))
    assert stacked[first_weight].shape == (3,) + networks[0][1][first_weight].shape
    points = torch.rand((3, 50, 3), generator=torch.Generator().manual_seed(7)) * 2 - 1
    together = evaluate_network(spec, stacked, points)
    assert together.shape == (3, 50, 1)
    for index, (_, params) in enumerate(networks):
        alone = evaluate_network(spec, params, points[index])
        torch.testing.assert_close(together[index], alone, atol=1e-6, rtol=1e-5)
        assert all(torch.equal(unstack_params(stacked, index)[name], params[name]) for name in params)


@pytest.mark.parametrize("kind", ["siren", "igr", "relu-pe", "idf"])
def test_batch_fit_equals_separate_fits(kind):
    config = small_config(kind)
    logged = []
    together = fit_sdf_batch(THREE_SPHERES, config, on_log=lambda index, entry: logged.append((index, entry)))
    alone = [fit_sdf(surface, normals, volume, config, volume_sdf=sdf) for surface, normals, volume, sdf in THREE_SPHERES]
    assert len(together) == 3
    for index, (batched, single) in enumerate(zip(together, alone)):
        assert batched.spec == single.spec and batched.steps == single.steps == 20
        assert set(batched.params) == set(single.params)
        for name, tensor in single.params.items():
            assert batched.params[name].device.type == "cpu" and batched.params[name].shape == tensor.shape
            assert torch.allclose(batched.params[name], tensor, atol=1e-5, rtol=0), name
        assert [e["step"] for e in batched.history] == [e["step"] for e in single.history] == [5, 10, 15, 20]
        for mine, theirs in zip(batched.history, single.history):
            assert set(mine) == set(theirs)
            assert mine["loss"] == pytest.approx(theirs["loss"], rel=1e-5)
            assert mine["lr"] == pytest.approx(theirs["lr"], rel=1e-12)
        assert [entry for i, entry in logged if i == index] == batched.history
    # The shapes really differ: the three fits end apart from each other.
    weights = [n for n in together[0].params if n.endswith("weight") and not n.startswith("displacement_")]
    last = sorted(weights, key=lambda n: int(n.split("_")[-2]))[-1]  # (an IDF's base network's)
    assert not torch.allclose(together[0].params[last], together[1].params[last], atol=1e-4)


def test_point_clouds_without_distances_fit_like_alone():
    clouds = [(surface, normals, volume, None) for surface, normals, volume, _ in THREE_SPHERES[:2]]
    config = small_config("siren", steps=10)
    together = fit_sdf_batch(clouds, config)
    for batched, (surface, normals, volume, _) in zip(together, clouds):
        single = fit_sdf(surface, normals, volume, config)
        assert all(torch.allclose(batched.params[k], single.params[k], atol=1e-5, rtol=0) for k in single.params)
        assert "sdf" not in batched.history[-1] and batched.history[-1]["loss"] == pytest.approx(single.history[-1]["loss"], rel=1e-5)


def test_fits_with_isopoints_are_refused():
    config = small_config("siren")
    config = dataclasses.replace(config, isopoints=dataclasses.replace(config.isopoints, enabled=True))
    with pytest.raises(ValueError, match="^training.isopoints.enabled: batched training does not extract iso-points"):
        fit_sdf_batch(THREE_SPHERES, config)


def test_mixed_step_layouts_are_refused():
    surface, normals, _, _ = THREE_SPHERES[1]
    mixed = [THREE_SPHERES[0], (surface, normals, np.zeros((0, 3)), None)]
    with pytest.raises(ValueError, match=r"shapes \[0\] have stored off-surface points and shapes \[1\] have none"):
        fit_sdf_batch(mixed, small_config("siren"))


def test_no_shapes_give_no_results():
    assert fit_sdf_batch([], small_config("siren")) == []


def test_time_budget_stops_the_whole_batch_and_is_recorded():
    config = small_config("siren", steps=10_000_000, seconds=0.5, log_every=1000)
    results = fit_sdf_batch(THREE_SPHERES, config)
    assert 1 <= results[0].steps < 10_000_000 and results[0].seconds < 5.0
    for result in results:
        assert result.steps == results[0].steps and result.history[-1]["step"] == result.steps
        assert np.isfinite(result.history[-1]["loss"])


@pytest.mark.parametrize("kind", ["siren", "igr"])
def test_stacked_steps_between_logs_never_wait_for_the_device(kind):  # (idf: see test_batch_fit_equals...)
    from tests.inrcore.device_reads import DeviceReads

    with DeviceReads() as reads:
        results = fit_sdf_batch(THREE_SPHERES, small_config(kind, steps=20, log_every=10))
    read = sum(k not in ("step", "seconds", "lr") for r in results for e in r.history for k in e)
    assert [e["step"] for e in results[0].history] == [10, 20]
    assert dict(reads.sites) == {"sdf/loop.py:history_entry": read}  # 3 shapes x 2 logs x (loss + terms)


def test_the_memory_of_one_more_shape_is_counted_from_its_step():
    from inrcore.sdf.batched import shape_step_bytes, shapes_for_memory

    config = small_config("siren")
    base = shape_step_bytes(config, 1000, 500)
    # stored samples: 7 floats per surface point (point, normal, IGR sigma), 5 per volume point
    assert shape_step_bytes(config, 2000, 500) - base == 4 * 7 * 1000
    assert shape_step_bytes(config, 1000, 600) - base == 4 * 5 * 100
    # what the step keeps grows exactly in proportion to its points (each saved tensor is [N, ...])
    sizes = [shape_step_bytes(dataclasses.replace(config, batch_surface=n, batch_offsurface=n, batch_uniform=n),
                              1000, 500) for n in (128, 256, 384)]
    assert sizes[2] - sizes[1] == sizes[1] - sizes[0] > 2 * 3 * 128 * 16 * 4  # > twice one [3 x 128, 16] layer
    _, initial = network_for(config.network, torch.Generator().manual_seed(0))
    parameters = sum(t.numel() for t in initial.values()) * 4
    constant = sizes[0] - (sizes[1] - sizes[0])  # parameters x 4 (with gradients and Adam's moments), samples
    assert 0 <= constant - (4 * parameters + 4 * (7 * 1000 + 5 * 500)) <= 64  # (and a few saved scalars)
    idf = small_config("idf")
    assert shape_step_bytes(idf, 1000, 500) > 2 * base  # two networks, f and f-hat, and their gradients
    assert shapes_for_memory(10 * 2**30, 100 * 2**20) == 81  # 0.8 x 10 GiB / 100 MiB = 81.9
    assert shapes_for_memory(2**20, 100 * 2**20) == 1 and shapes_for_memory(2**50, 1) == 1024


@pytest.mark.skipif(not torch.cuda.is_available(), reason="compares with CUDA's own allocation count")
def test_the_counted_memory_covers_a_stacked_cuda_step():
    from inrcore.sdf.batched import shape_step_bytes

    config = dataclasses.replace(TrainConfig(), device="cuda", steps=1)
    shapes = [sphere_samples(50_000, 0.3 + 0.01 * i, (0.0, 0.0, 0.0), i, n_volume=50_000) for i in range(8)]
    torch.cuda.reset_peak_memory_stats()
    start = torch.cuda.memory_allocated()
    fit_sdf_batch(shapes, config)
    peak = torch.cuda.max_memory_allocated() - start
    counted = 8 * shape_step_bytes(config, 50_000, 50_000)
    assert 0.5 * counted < peak <= counted  # an upper bound, not too loose
