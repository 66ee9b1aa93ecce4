import numpy as np
import pytest
import torch

from inrcore.fields.evaluation import evaluate_points
from inrcore.fields.settings import NetworkConfig
from inrcore.sdf.loop import learning_rate_at
from inrcore.sdf.settings import TrainConfig
from inrcore.sdf.training import fit_sdf


def sphere_cloud(n, radius=0.5, seed=0):
    rng = np.random.default_rng(seed)
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return d * radius, d


def test_learning_rate_schedule_ends():
    assert learning_rate_at(0.0, 1e-3, 1e-5) == pytest.approx(1e-3)
    assert learning_rate_at(1.0, 1e-3, 1e-5) == pytest.approx(1e-5)
    assert learning_rate_at(0.5, 1e-3, 1e-5) == pytest.approx(0.5 * (1e-3 + 1e-5))


def test_short_fit_of_a_sphere_gives_a_signed_distance():
    points, normals = sphere_cloud(4000)
    config = TrainConfig(steps=300, batch_surface=512, batch_offsurface=0, batch_uniform=512, lr=1e-3,
                         lr_final=1e-4, log_every=100, device="cpu",
                         network=NetworkConfig(width=32, layers=2, omega_first=15.0, omega_hidden=15.0))
    logged = []
    result = fit_sdf(points, normals, np.zeros((0, 3)), config, on_log=logged.append)
    assert result.steps == 300
    assert [e["step"] for e in result.history] == [100, 200, 300] and logged == result.history
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    test_points, _ = sphere_cloud(500, seed=1)
    on_surface = evaluate_points(result.spec, result.params, test_points.astype(np.float32))
    assert np.abs(on_surface).mean() < 0.02
    inside, outside = evaluate_points(result.spec, result.params, np.array([[0, 0, 0], [0.9, 0.9, 0.9]], np.float32))
    assert inside < 0 < outside
    # Near the surface the field is a distance: values 0.05 off the sphere are about +-0.05.
    shell_in = evaluate_points(result.spec, result.params, (test_points * 0.9).astype(np.float32))
    shell_out = evaluate_points(result.spec, result.params, (test_points * 1.1).astype(np.float32))
    assert abs(np.median(shell_in) + 0.05) < 0.02 and abs(np.median(shell_out) - 0.05) < 0.02


def test_time_budget_stops_the_loop_and_is_recorded():
    points, normals = sphere_cloud(500)
    config = TrainConfig(steps=10_000_000, seconds=0.5, batch_surface=64, batch_offsurface=0, batch_uniform=64,
                         log_every=1000, network=NetworkConfig(width=8, layers=1))
    result = fit_sdf(points, normals, np.zeros((0, 3)), config)
    assert 1 <= result.steps < 10_000_000
    assert result.seconds < 5.0
    assert result.history[-1]["step"] == result.steps


def test_same_seed_gives_the_same_weights():
    points, normals = sphere_cloud(500)
    config = TrainConfig(steps=5, batch_surface=64, batch_offsurface=0, batch_uniform=64, device="cpu",
                         network=NetworkConfig(width=8, layers=1))
    a = fit_sdf(points, normals, np.zeros((0, 3)), config)
    b = fit_sdf(points, normals, np.zeros((0, 3)), config)
    assert all(torch.equal(a.params[k], b.params[k]) for k in a.params)


@pytest.mark.parametrize("kind", ["igr", "relu-pe"])
def test_short_fit_with_the_igr_loss_gives_a_signed_distance(kind):
    points, normals = sphere_cloud(4000)
    config = TrainConfig(steps=300, batch_surface=512, batch_offsurface=0, batch_uniform=512, lr=1e-3, lr_final=1e-4,
                         log_every=100, device="cpu",
                         network=NetworkConfig(kind=kind, width=64, layers=4, frequencies=4))
    result = fit_sdf(points, normals, np.zeros((0, 3)), config)
    kinds = {layer.kind for layer in result.spec}
    assert ("softplus" in kinds) == (kind == "igr") and ("fourier" in kinds) == (kind == "relu-pe")
    assert set(result.history[-1]) >= {"surface", "normal", "eikonal"} and "offsurface" not in result.history[-1]
    test_points, _ = sphere_cloud(500, seed=1)
    on_surface = evaluate_points(result.spec, result.params, test_points.astype(np.float32))
    assert np.abs(on_surface).mean() < 0.005
    inside = evaluate_points(result.spec, result.params, (0.8 * test_points).astype(np.float32))
    outside = evaluate_points(result.spec, result.params, (1.2 * test_points).astype(np.float32))
    assert abs(np.median(inside) + 0.1) < 0.02 and abs(np.median(outside) - 0.1) < 0.02


@pytest.mark.parametrize("kind", ["siren", "igr", "relu-pe", "idf"])
def test_steps_between_logs_never_wait_for_the_device(kind):
    """On a GPU a step that reads a value back or picks points by a mask waits for the device; only the
    log steps may (`tests.inrcore.device_reads`)."""
    from tests.inrcore.device_reads import DeviceReads

    points, normals = sphere_cloud(500)
    volume = np.random.default_rng(1).uniform(-1, 1, (500, 3))
    config = TrainConfig(steps=40, log_every=20, batch_surface=64, batch_offsurface=64, batch_uniform=64,
                         device="cpu", network=NetworkConfig(kind=kind, width=16, layers=1))
    with DeviceReads() as reads:
        result = fit_sdf(points, normals, volume, config, volume_sdf=np.linalg.norm(volume, axis=1) - 0.5)
    assert result.steps == 40 and [e["step"] for e in result.history] == [20, 40]
    read = sum(k not in ("step", "seconds", "lr", "stage") for e in result.history for k in e)  # losses and terms
    assert dict(reads.sites) == {"sdf/loop.py:history_entry": read}
