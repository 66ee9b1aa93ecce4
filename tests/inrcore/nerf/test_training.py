import math

import numpy as np
import pytest
import torch

from inrcore.geometry.cameras import Intrinsics
from inrcore.geometry.rays import rays_from_cameras
from inrcore.nerf.models import NgpRenderer
from inrcore.nerf.pictures import (
    depth_to_image,
    eval_rays,
    frames_within_budget,
    measure_test_views,
    orbit_poses,
    picture_budget,
    render_turntable,
    render_view,
    seconds_after_training,
    view_indices,
    write_test_pictures,
)
from inrcore.nerf.raybatches import ShuffledRayBatches, flatten_rays, ray_chunks_from_arrays
from inrcore.nerf.scenes import SceneSplit
from inrcore.nerf.settings import NerfConfig, NerfPicturesConfig
from inrcore.nerf.training import learning_rate, load_radiance_field, save_radiance_field, train_radiance_field


CPU = torch.device("cpu")
TINY_NGP = dict(model="ngp", hash_levels=4, hash_log2_size=12, hash_base_resolution=4, hash_finest_resolution=32,
                ngp_width=16, grid_resolution=8, batch_rays=64, eval_every=2, eval_views=1, checkpoint_every=2,
                render_step=0.05)
TINY_NERF = dict(model="nerf", depth=2, width=16, skip=0, n_coarse=8, n_fine=8, batch_rays=32, eval_every=2,
                 eval_views=1, checkpoint_every=2, position_frequencies=4, direction_frequencies=2)


def _tiny_scene(size=12, views=3):
    """A red square seen on white from `views` cameras on a circle of radius 4 (images made by hand)."""
    poses = orbit_poses(views, 4.0, elevation_deg=20.0)
    intrinsics = Intrinsics.from_camera_angle_x(size, size, 0.69)
    images = np.ones((views, size, size, 3), dtype=np.float32)
    images[:, size // 4: 3 * size // 4, size // 4: 3 * size // 4] = [1.0, 0.0, 0.0]
    return SceneSplit("test", images, poses, intrinsics, tuple(f"r_{i}" for i in range(views)), 2.0, 6.0)


def _batches(split, batch_rays, seed=0):
    origins, directions = rays_from_cameras(torch.from_numpy(split.poses), split.intrinsics)
    arrays = flatten_rays([origins.numpy(), directions.numpy(), split.images])
    read, count = ray_chunks_from_arrays(*arrays, chunk_size=64)
    return ShuffledRayBatches(read, count, batch_rays, chunks_in_buffer=2, seed=seed)


def test_learning_rate_decays_exponentially_to_the_final_fraction():
    config = NerfConfig(model="ngp", lr_final_fraction=0.1)
    assert learning_rate(config, 0.0) == pytest.approx(1e-2)
    assert learning_rate(config, 0.5) == pytest.approx(1e-2 * math.sqrt(0.1))
    assert learning_rate(config, 1.0) == pytest.approx(1e-3)
    assert learning_rate(NerfConfig(model="nerf", lr=1e-3), 2.0) == pytest.approx(1e-4)


def test_orbit_poses_look_at_the_origin():
    poses = orbit_poses(8, 3.0, elevation_deg=30.0)
    assert poses.shape == (8, 4, 4)
    for pose in poses:
        rotation, position = pose[:3, :3], pose[:3, 3]
        np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-6)
        assert np.linalg.norm(position) == pytest.approx(3.0)
        assert position[1] == pytest.approx(3.0 * math.sin(math.radians(30.0)), rel=1e-6)
        # the camera looks down its -z axis, straight at the origin
        np.testing.assert_allclose(-rotation[:, 2], -position / 3.0, atol=1e-6)
        assert rotation[1, 1] > 0  # image up is world up-ish


def test_view_indices_spread():
    assert view_indices(20, 4) == [0, 6, 13, 19]
    assert view_indices(3, 5) == [0, 1, 2]
    assert view_indices(10, 1) == [0]


def test_depth_image_grey_levels():
    image = depth_to_image(np.array([[2.0, 6.0, 4.0]]), np.array([[1.0, 1.0, 0.0]]), near=2.0, far=6.0)
    assert image[0, :, 0].tolist() == [26, 230, 255]  # 0.1, 0.9 and (empty) white


@pytest.mark.parametrize("settings", [TINY_NGP, TINY_NERF], ids=["ngp", "nerf"])
def test_two_training_steps_end_to_end(tmp_path, settings):
    """The smoke test: two steps on a tiny scene log, evaluate, checkpoint, save and render."""
    scene = _tiny_scene()
    config = NerfConfig(steps=2, **settings)
    logs, evals = [], []
    result = train_radiance_field(config, _batches(scene, config.batch_rays), 2.0, 6.0, CPU, test=scene,
                                  on_log=logs.append, on_eval=lambda s, m, imgs: evals.append((s, m, imgs)),
                                  checkpoint_path=str(tmp_path / "ckpt.pt"), log_every=1)
    assert result.steps == 2 and result.resumed_from == 0
    assert [entry["step"] for entry in logs] == [1, 2]
    assert all(np.isfinite(entry["loss"]) and entry["samples"] > 0 for entry in logs)
    assert len(evals) == 1 and evals[0][0] == 2
    assert 0 < evals[0][1]["psnr"] < 60 and -1 <= evals[0][1]["ssim"] <= 1
    assert 0 < evals[0][1]["render_seconds"] < 60  # the time of the renders, for estimates of what follows
    assert evals[0][2][0].shape == (12, 12, 3) and evals[0][2][0].dtype == np.uint8
    assert (tmp_path / "ckpt.pt").is_file()

    weights = save_radiance_field(tmp_path / "field.safetensors", result.renderer, config, {"note": "x"})
    loaded, loaded_config, metadata = load_radiance_field(weights, CPU)
    assert loaded_config == config and metadata == {"note": "x"}
    a = render_view(result.renderer, scene.poses[0], scene.intrinsics)["rgb"]
    b = render_view(loaded, scene.poses[0], scene.intrinsics)["rgb"]
    np.testing.assert_allclose(a, b, atol=1e-6)

    progress = []
    measured = measure_test_views(loaded, scene, shown_views=2, on_view=lambda *a: progress.append(a[:2]))
    assert measured.indices == [0, 1, 2] and measured.shown == [0, 2]
    assert progress == [(1, 3), (2, 3), (3, 3)]
    np.testing.assert_array_equal(measured.renders[1], np.rint(render_view(loaded, scene.poses[2],
                                                                           scene.intrinsics)["rgb"] * 255))
    pictures = write_test_pictures(measured, scene, tmp_path / "renders")
    from PIL import Image

    # two renders above their two ground truths, 4 px apart: (2 x 12 + 4) wide, (2 x 12 + 4) high
    assert Image.open(pictures["test_views"]).size == (28, 28)
    assert Image.open(pictures["depth"]).size == (28, 12)
    turntable = render_turntable(loaded, scene, tmp_path / "renders" / "turntable.gif", 3, 6, budget=None)
    assert (turntable.frames, turntable.requested, turntable.size) == (3, 3, (6, 6))
    assert Image.open(turntable.path).n_frames == 3 and Image.open(turntable.path).size == (6, 6)


def test_measuring_some_views_and_a_turntable_out_of_time(tmp_path):
    scene = _tiny_scene(views=5)
    result = train_radiance_field(NerfConfig(steps=1, **TINY_NGP), _batches(scene, 64), 2.0, 6.0, CPU)
    measured = measure_test_views(result.renderer, scene, views=3, shown_views=1)
    assert measured.indices == [0, 2, 4] and measured.shown == [0] and len(measured.depths) == 1
    frames = []
    # a budget no frame fits in: the first frame, rendered to time it, is the whole turntable
    turntable = render_turntable(result.renderer, scene, tmp_path / "t.gif", 24, 128, budget=1e-9,
                                 on_frame=lambda done, total, seconds: frames.append((done, total)))
    assert (turntable.frames, turntable.requested) == (1, 24) and frames == [(1, 1)]
    assert turntable.size == (12, 12)  # never larger than the test images
    assert render_turntable(result.renderer, scene, tmp_path / "none.gif", 0, 64, None).path is None


def test_frames_within_a_budget():
    assert frames_within_budget(24, 2.0, 30.0) == 15  # 30 / 2
    assert frames_within_budget(24, 0.5, 30.0) == 24  # all fit
    assert frames_within_budget(24, 100.0, 30.0) == 1  # the one rendered to time it
    assert frames_within_budget(24, 2.0, None) == 24


def test_picture_budget_is_a_tenth_of_training_at_least_30_seconds():
    assert picture_budget(NerfPicturesConfig(), 600.0) == 60.0
    assert picture_budget(NerfPicturesConfig(), 100.0) == 30.0
    assert picture_budget(NerfPicturesConfig(seconds=5.0), 600.0) == 5.0


def test_seconds_after_training_from_a_render_speed():
    scene = _tiny_scene(size=12, views=3)  # 3 test views of 12 x 12
    assert eval_rays(NerfConfig(eval_views=2), scene) == 2 * 144
    pictures = NerfPicturesConfig(turntable_frames=24, turntable_size=6)
    # measuring: 3 x 144 rays x 1 ms = 0.432 s; turntable: 24 frames x 36 rays x 1 ms = 0.864 s, capped at 0.5 s
    assert seconds_after_training(1e-3, scene, pictures, budget=0.5) == pytest.approx(
        {"measure": 0.432, "turntable": 0.5})
    fewer = NerfPicturesConfig(test_views=2, turntable_frames=0)
    assert seconds_after_training(1e-3, scene, fewer, budget=0.5) == pytest.approx({"measure": 0.288, "turntable": 0.0})


def test_resume_continues_from_the_checkpoint(tmp_path):
    scene = _tiny_scene()
    checkpoint = str(tmp_path / "ckpt.pt")
    written = []  # (path, the step in the file when on_checkpoint is called)
    first = train_radiance_field(NerfConfig(steps=2, **{**TINY_NGP, "checkpoint_every": 1}), _batches(scene, 64), 2.0, 6.0,
                                 CPU, checkpoint_path=checkpoint, data_key="scene-a",
                                 on_checkpoint=lambda p: written.append((p, torch.load(p, weights_only=True)["step"])))
    assert written == [(checkpoint, 1), (checkpoint, 2), (checkpoint, 2)]  # every step, then at the end
    resumed = train_radiance_field(NerfConfig(steps=4, **{**TINY_NGP, "checkpoint_every": 1}), _batches(scene, 64),
                                   2.0, 6.0, CPU,
                                   checkpoint_path=checkpoint, data_key="scene-a")
    assert resumed.resumed_from == 2 and resumed.steps == 4
    assert resumed.seconds >= first.seconds
    # other data: the checkpoint is not used
    fresh = train_radiance_field(NerfConfig(steps=1, **TINY_NGP), _batches(scene, 64), 2.0, 6.0, CPU,
                                 checkpoint_path=str(tmp_path / "ckpt.pt"), data_key="scene-b")
    assert fresh.resumed_from == 0 and fresh.steps == 1


class _Planted:
    """An object whose unpickling would run code: it must never be unpickled from a checkpoint."""

    def __reduce__(self):
        return (print, ("a planted checkpoint ran code",))


def test_a_checkpoint_holding_pickled_code_is_not_executed_and_training_starts_over(tmp_path, capsys):
    scene = _tiny_scene()
    checkpoint = tmp_path / "ckpt.pt"
    torch.save({"key": "x", "step": 3, "payload": _Planted()}, checkpoint)
    result = train_radiance_field(NerfConfig(steps=1, **TINY_NGP), _batches(scene, 64), 2.0, 6.0, CPU,
                                  checkpoint_path=str(checkpoint), data_key="scene-a")
    assert result.resumed_from == 0 and result.steps == 1
    assert "planted" not in capsys.readouterr().out
    assert torch.load(checkpoint, weights_only=True)["step"] == 1  # overwritten by a plain one


def test_ngp_learns_a_flat_colour_quickly():
    """A real (if tiny) fit: 150 steps take a red-square scene well above the untrained PSNR
    (measured: 6.9 dB after one step, 18.8 dB after 150)."""
    scene = _tiny_scene(size=16, views=6)
    config = NerfConfig(steps=150, **{**TINY_NGP, "batch_rays": 256, "eval_every": 1000})
    before = train_radiance_field(NerfConfig(steps=1, **{**TINY_NGP, "eval_every": 1000}), _batches(scene, 256),
                                  2.0, 6.0, CPU)
    after = train_radiance_field(config, _batches(scene, 256), 2.0, 6.0, CPU)
    from inrcore.nerf.pictures import evaluate_views

    psnr_before = evaluate_views(before.renderer, scene)[0]["psnr"]
    psnr_after = evaluate_views(after.renderer, scene)[0]["psnr"]
    assert isinstance(after.renderer, NgpRenderer)
    assert psnr_before < 8.0
    assert psnr_after > psnr_before + 8.0


def test_which_steps_wait_for_the_device():
    """NeRF's steps read nothing back between logs (its samples per ray are fixed); NGP's occupancy-grid
    marching keeps the samples in occupied cells, a data-dependent count, so each of its steps waits
    once for the device to count them (as nerfacc's and Instant-NGP's own marching do), and the grid's
    refresh reads its threshold every `grid_every` steps (`tests.inrcore.device_reads`)."""
    from tests.inrcore.device_reads import DeviceReads

    scene = _tiny_scene()
    quiet = {"eval_every": 1000, "checkpoint_every": 1000}
    with DeviceReads() as reads:
        train_radiance_field(NerfConfig(steps=40, **{**TINY_NERF, **quiet}), _batches(scene, 32), 2.0, 6.0, CPU,
                             log_every=20)
    assert dict(reads.sites) == {"nerf/training.py:train_radiance_field": 3 * 2}  # steps 1, 20, 40: loss, PSNR
    with DeviceReads() as reads:
        train_radiance_field(NerfConfig(steps=40, **{**TINY_NGP, **quiet}), _batches(scene, 64), 2.0, 6.0, CPU,
                             log_every=20)
    assert dict(reads.sites) == {
        "nerf/training.py:train_radiance_field": 3 * 2,
        "nerf/models.py:_march": 40 * 2,  # the longest ray's sample count, the occupied samples' count
        "nerf/models.py:render": 40,  # the count of samples in front of opaque ones
        "nerf/models.py:update": 3,  # the grid's refresh (every grid_every = 16 steps): its threshold
    }
