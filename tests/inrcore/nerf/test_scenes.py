"""Loading scenes of posed images: Blender and nerfstudio layouts, compositing, downscaling, errors."""

import json
import math
import pickle

import numpy as np
import pytest
from PIL import Image

from inrcore.errors import SceneError, ShapeError
from inrcore.geometry.cameras import Intrinsics
from inrcore.nerf.scenes import SceneSplit, load_scene_split, scene_splits


ANGLE = 0.6911112070083618  # Blender lego's camera_angle_x


def translation(x, y, z):
    pose = np.eye(4)
    pose[:3, 3] = (x, y, z)
    return pose


def rotation_y(degrees, position=(0.0, 0.0, 0.0)):
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    pose = np.array([[c, 0, s, 0], [0, 1, 0, 0], [-s, 0, c, 0], [0, 0, 0, 1.0]])
    pose[:3, 3] = position
    return pose


def save(path, pixels):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels, dtype=np.uint8)).save(path)
    return path


def write_json(path, data):
    path.write_text(json.dumps(data))
    return path


def rgba_image():
    """A 2 x 3 RGBA image (H=2, W=3) with hand-chosen pixels."""
    return np.array([
        [[255, 0, 0, 51], [0, 102, 255, 255], [10, 20, 30, 0]],
        [[255, 255, 255, 255], [0, 0, 0, 255], [204, 102, 0, 153]],
    ], dtype=np.uint8)


def blender_scene(folder, n=2, split="train", image=None, extra=None):
    """A Blender-style split: camera_angle_x, extensionless ./<split>/r_<i>, RGBA pngs."""
    image = rgba_image() if image is None else image
    frames = []
    for i in range(n):
        save(folder / split / f"r_{i}.png", image)
        frames.append({"file_path": f"./{split}/r_{i}", "rotation": 0.0,
                       "transform_matrix": rotation_y(30.0 * i, (0.0, 0.0, 4.0 + i)).tolist()})
    data = {"camera_angle_x": ANGLE, "frames": frames, **(extra or {})}
    return write_json(folder / f"transforms_{split}.json", data)


def test_blender_scene_loads_with_camera_angle_and_extensionless_paths(tmp_path):
    blender_scene(tmp_path, n=2)
    scene = load_scene_split(tmp_path, "train")
    assert isinstance(scene, SceneSplit)
    assert scene.name == "train" and len(scene) == 2
    assert scene.images.shape == (2, 2, 3, 3) and scene.images.dtype == np.float32
    assert scene.poses.shape == (2, 4, 4) and scene.poses.dtype == np.float32
    np.testing.assert_allclose(scene.poses[1], rotation_y(30.0, (0.0, 0.0, 5.0)), atol=1e-7)
    focal = 0.5 * 3 / math.tan(0.5 * ANGLE)  # W = 3 from the image
    camera = scene.intrinsics
    assert (camera.width, camera.height, camera.cx, camera.cy) == (3, 2, 1.5, 1.0)
    assert camera.fx == pytest.approx(focal, rel=1e-12) and camera.fy == camera.fx
    assert scene.files == (str(tmp_path / "train" / "r_0.png"), str(tmp_path / "train" / "r_1.png"))
    assert (scene.near, scene.far) == (2.0, 6.0)


def test_rgba_is_composited_on_white_by_hand(tmp_path):
    blender_scene(tmp_path, n=1)
    image = load_scene_split(tmp_path).images[0]
    # (255, 0, 0, a=0.2): rgb * 0.2 + 1 * 0.8
    np.testing.assert_allclose(image[0, 0], [1.0, 0.8, 0.8], atol=1e-6)
    # opaque pixels keep their colour: (0, 102, 255) / 255
    np.testing.assert_allclose(image[0, 1], [0.0, 0.4, 1.0], atol=1e-6)
    # fully transparent: the background whatever the colour underneath
    np.testing.assert_allclose(image[0, 2], [1.0, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(image[1, 0], [1.0, 1.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(image[1, 1], [0.0, 0.0, 0.0], atol=1e-6)
    # (204, 102, 0, a=0.6): (0.8, 0.4, 0) * 0.6 + 0.4 = (0.88, 0.64, 0.4)
    np.testing.assert_allclose(image[1, 2], [0.88, 0.64, 0.4], atol=1e-6)


def test_rgba_is_composited_on_a_given_background(tmp_path):
    blender_scene(tmp_path, n=1)
    image = load_scene_split(tmp_path, background=(0.0, 0.5, 0.0)).images[0]
    np.testing.assert_allclose(image[0, 0], [0.2, 0.4, 0.0], atol=1e-6)  # (1, 0, 0) * 0.2 + (0, 0.5, 0) * 0.8
    np.testing.assert_allclose(image[0, 2], [0.0, 0.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(image[1, 2], [0.48, 0.44, 0.0], atol=1e-6)  # (0.8, 0.4, 0) * 0.6 + (0, 0.2, 0)


def test_rgb_is_used_as_is_and_grayscale_is_expanded(tmp_path):
    save(tmp_path / "a.png", [[[51, 102, 153], [0, 0, 255]]])
    save(tmp_path / "b.png", np.array([[51, 255]], dtype=np.uint8))  # 2-D: mode L
    frames = [{"file_path": "a.png", "transform_matrix": np.eye(4).tolist()},
              {"file_path": "./b.png", "transform_matrix": np.eye(4).tolist()}]
    write_json(tmp_path / "transforms_test.json", {"camera_angle_x": ANGLE, "frames": frames})
    scene = load_scene_split(tmp_path, "test", background=(0.0, 0.0, 0.0))
    np.testing.assert_allclose(scene.images[0], [[[0.2, 0.4, 0.6], [0.0, 0.0, 1.0]]], atol=1e-6)
    np.testing.assert_allclose(scene.images[1], [[[0.2, 0.2, 0.2], [1.0, 1.0, 1.0]]], atol=1e-6)


def test_grayscale_with_alpha_and_16_bit_grayscale(tmp_path):
    save(tmp_path / "la.png", np.array([[[102, 51], [0, 0]]], dtype=np.uint8))  # 2 channels: mode LA
    Image.fromarray(np.array([[13107, 65535]], dtype=np.uint16)).save(tmp_path / "i16.png")
    frames = [{"file_path": name, "transform_matrix": np.eye(4).tolist()} for name in ("la", "i16")]
    write_json(tmp_path / "transforms_val.json", {"camera_angle_x": ANGLE, "frames": frames})
    scene = load_scene_split(tmp_path, "val")
    # gray 0.4 at alpha 0.2 on white: 0.08 + 0.8
    np.testing.assert_allclose(scene.images[0], [[[0.88] * 3, [1.0] * 3]], atol=1e-6)
    np.testing.assert_allclose(scene.images[1], [[[0.2] * 3, [1.0] * 3]], atol=1e-6)


def test_nerfstudio_layout_with_fl_x_cx_and_w_h(tmp_path):
    save(tmp_path / "images" / "frame_00001.png", np.full((4, 6, 3), 51, dtype=np.uint8))
    save(tmp_path / "images" / "frame_00002.png", np.full((4, 6, 3), 204, dtype=np.uint8))
    data = {"fl_x": 5.0, "fl_y": 6.0, "cx": 2.5, "cy": 1.75, "w": 6, "h": 4, "near": 0.5, "far": 3.0,
            "k1": 0.0, "frames": [
                {"file_path": "images/frame_00001.png", "transform_matrix": translation(1, 2, 3).tolist()},
                {"file_path": "./images/frame_00002.png", "transform_matrix": translation(0, 0, 1).tolist()}]}
    write_json(tmp_path / "transforms_train.json", data)
    scene = load_scene_split(tmp_path)
    assert scene.intrinsics == Intrinsics(6, 4, 5.0, 6.0, 2.5, 1.75)
    assert (scene.near, scene.far) == (0.5, 3.0)
    np.testing.assert_allclose(scene.images[0], 0.2, atol=1e-6)
    np.testing.assert_allclose(scene.images[1], 0.8, atol=1e-6)
    np.testing.assert_allclose(scene.poses[0, :3, 3], [1, 2, 3])


def test_fl_x_alone_gives_fy_equal_fx_and_centred_principal_point(tmp_path):
    save(tmp_path / "x.png", np.zeros((3, 5, 3)))
    write_json(tmp_path / "transforms_train.json",
               {"fl_x": 7.5, "w": 5, "h": 3, "frames": [{"file_path": "x", "transform_matrix": np.eye(4).tolist()}]})
    assert load_scene_split(tmp_path).intrinsics == Intrinsics(5, 3, 7.5, 7.5, 2.5, 1.5)


def test_per_frame_intrinsics_override_the_top_level(tmp_path):
    save(tmp_path / "a.png", np.zeros((4, 6, 3)))
    save(tmp_path / "b.png", np.zeros((4, 6, 3)))
    frame = {"fl_x": 3.0, "fl_y": 4.0, "cx": 3.0, "cy": 2.5, "w": 6, "h": 4, "transform_matrix": np.eye(4).tolist()}
    write_json(tmp_path / "transforms_train.json", {"fl_x": 100.0, "w": 10, "h": 10, "frames": [
        {**frame, "file_path": "a.png"}, {**frame, "file_path": "b.png"}]})
    assert load_scene_split(tmp_path).intrinsics == Intrinsics(6, 4, 3.0, 4.0, 3.0, 2.5)


def test_jpg_is_tried_after_png(tmp_path):
    Image.fromarray(np.full((8, 8, 3), 128, dtype=np.uint8)).save(tmp_path / "r_0.jpg", quality=100)
    write_json(tmp_path / "transforms_test.json",
               {"camera_angle_x": ANGLE, "frames": [{"file_path": "./r_0", "transform_matrix": np.eye(4).tolist()}]})
    scene = load_scene_split(tmp_path, "test")
    assert scene.files == (str(tmp_path / "r_0.jpg"),)
    np.testing.assert_allclose(scene.images[0], 128 / 255, atol=2 / 255)


def test_downscale_averages_blocks_and_scales_intrinsics(tmp_path):
    pixels = np.zeros((4, 6, 3), dtype=np.uint8)
    pixels[:2, :2] = [255, 0, 0]  # top-left block all red
    pixels[0, 2] = [255, 255, 255]  # one white pixel in the next block, the rest black
    pixels[2:, 4:] = [0, 0, 204]
    pixels[3, 5] = [0, 0, 0]
    save(tmp_path / "a.png", pixels)
    write_json(tmp_path / "transforms_train.json", {"fl_x": 8.0, "cx": 3.0, "cy": 2.0, "w": 6, "h": 4,
                                                    "frames": [{"file_path": "a", "transform_matrix": np.eye(4).tolist()}]})
    scene = load_scene_split(tmp_path, downscale=2)
    assert scene.images.shape == (1, 2, 3, 3)
    assert scene.intrinsics == Intrinsics(3, 2, 4.0, 4.0, 1.5, 1.0)
    np.testing.assert_allclose(scene.images[0, 0, 0], [1.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(scene.images[0, 0, 1], [0.25, 0.25, 0.25], atol=1e-6)
    np.testing.assert_allclose(scene.images[0, 1, 2], [0.0, 0.0, 0.6], atol=1e-6)  # 3 of 4 at 0.8
    np.testing.assert_allclose(scene.images[0, 1, 0], [0.0, 0.0, 0.0], atol=1e-6)


def test_downscale_of_a_size_not_divisible_matches_pil_box(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(7, 11, 3), dtype=np.uint8)
    save(tmp_path / "a.png", pixels)
    write_json(tmp_path / "transforms_train.json",
               {"camera_angle_x": ANGLE, "frames": [{"file_path": "a", "transform_matrix": np.eye(4).tolist()}]})
    full = load_scene_split(tmp_path)
    small = load_scene_split(tmp_path, downscale=3)
    assert small.images.shape == (1, 2, 3, 3)
    assert small.intrinsics == full.intrinsics.downscaled(3)
    assert small.intrinsics.fx == pytest.approx(full.intrinsics.fx / 3)
    assert (small.intrinsics.cx, small.intrinsics.cy) == (11 / 6, 7 / 6)
    reference = Image.fromarray(pixels).resize((3, 2), Image.BOX, box=(0, 0, 9, 6))
    # PIL works in 8-bit fixed point: within one level of the exact block means
    np.testing.assert_allclose(small.images[0] * 255, np.asarray(reference, dtype=np.float64), atol=1.0)
    np.testing.assert_allclose(small.images[0, 1, 2], pixels[3:6, 6:9].mean(axis=(0, 1)) / 255, atol=1e-6)


def test_intrinsics_downscaled_and_checks():
    camera = Intrinsics(800, 600, 1111.0, 1112.0, 400.0, 300.0)
    assert camera.downscaled(4) == Intrinsics(200, 150, 277.75, 278.0, 100.0, 75.0)
    assert camera.downscaled(1) == camera
    assert Intrinsics.from_camera_angle_x(800, 800, ANGLE).fx == pytest.approx(1111.1110311937682)
    for factor in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            camera.downscaled(factor)
    with pytest.raises(ValueError, match="cannot downscale"):
        camera.downscaled(601)
    with pytest.raises(ValueError, match="width"):
        Intrinsics(0, 1, 1.0, 1.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="fx"):
        Intrinsics(1, 1, math.nan, 1.0, 0.0, 0.0)


def test_intrinsics_scaled_to_a_longest_side():
    camera = Intrinsics(800, 600, 1111.0, 1112.0, 400.0, 300.0)
    # 128 / 800 = 0.16: 128 x 96, every focal length and centre times 0.16
    scaled = camera.scaled_to(128)
    assert (scaled.width, scaled.height, scaled.cx, scaled.cy) == (128, 96, 64.0, 48.0)
    assert (scaled.fx, scaled.fy) == (pytest.approx(177.76), pytest.approx(177.92))
    # 70 / 800 x 600 = 52.5, rounded to 52: fy and cy follow 52 / 600 (cy = 300 x 52 / 600 = 26)
    small = camera.scaled_to(70)
    assert (small.width, small.height) == (70, 52)
    assert small.fy == pytest.approx(1112.0 * 52 / 600) and small.cy == pytest.approx(26.0)
    assert camera.scaled_to(800) is camera and camera.scaled_to(4000) is camera  # never enlarged
    for size in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            camera.scaled_to(size)


def test_scene_splits_lists_present_splits_in_order(tmp_path):
    assert scene_splits(tmp_path) == ()
    for split in ("test", "train"):
        blender_scene(tmp_path, n=1, split=split)
    (tmp_path / "transforms.json").write_text("{}")  # not a split file
    assert scene_splits(tmp_path) == ("train", "test")
    blender_scene(tmp_path, n=1, split="val")
    assert scene_splits(tmp_path) == ("train", "val", "test")
    assert scene_splits(tmp_path / "missing") == ()


def test_load_rejects_bad_arguments(tmp_path):
    blender_scene(tmp_path, n=1)
    with pytest.raises(ValueError, match="downscale"):
        load_scene_split(tmp_path, downscale=0)
    with pytest.raises(ValueError, match="background"):
        load_scene_split(tmp_path, background=(1.0, 1.0))


# ----------------------------------------------------------------------------- errors


def expect_scene_error(path, *words, folder=None, split="train", **kwargs):
    """Load and check the SceneError: its message starts with `path`, then contains every word."""
    with pytest.raises(SceneError) as info:
        load_scene_split(folder if folder is not None else path.parent, split, **kwargs)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert info.value.path == str(path)
    for word in words:
        assert word in message, (word, message)
    return message


def frames_scene(tmp_path, frames, **top):
    """A transforms_train.json with the given frames, with a valid 2x3 RGB image at ./a.png."""
    save(tmp_path / "a.png", np.zeros((2, 3, 3)))
    return write_json(tmp_path / "transforms_train.json", {"camera_angle_x": ANGLE, **top, "frames": frames})


def test_scene_error_is_a_shape_error_and_pickles():
    error = SceneError("/a/transforms_train.json", "no \"frames\" list")
    assert isinstance(error, ShapeError) and isinstance(error, ValueError)
    assert str(error) == "/a/transforms_train.json: no \"frames\" list"
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is SceneError and str(copy) == str(error)


def test_missing_transforms_file(tmp_path):
    expect_scene_error(tmp_path / "transforms_val.json", "transforms file not found", folder=tmp_path, split="val")
    message = expect_scene_error(tmp_path / "nope" / "transforms_train.json", "not found", folder=tmp_path / "nope")
    assert "does not exist" in message


def test_transforms_not_json(tmp_path):
    path = tmp_path / "transforms_train.json"
    path.write_text("{\"frames\": [")
    expect_scene_error(path, "not valid JSON")
    path.write_bytes(b"\xff\xfe\x00garbage")
    expect_scene_error(path, "not valid JSON")
    path.write_text("[1, 2]")
    expect_scene_error(path, "not a JSON object", "list")


def test_no_frames(tmp_path):
    path = write_json(tmp_path / "transforms_train.json", {"camera_angle_x": ANGLE})
    expect_scene_error(path, "no \"frames\"")
    write_json(path, {"camera_angle_x": ANGLE, "frames": []})
    expect_scene_error(path, "\"frames\" is empty")
    write_json(path, {"camera_angle_x": ANGLE, "frames": {"file_path": "a"}})
    expect_scene_error(path, "\"frames\" is not a list")
    write_json(path, {"camera_angle_x": ANGLE, "frames": ["a.png"]})
    expect_scene_error(path, "frame 0 is not a JSON object")


def test_frame_without_file_path_or_transform_matrix(tmp_path):
    good = {"file_path": "a", "transform_matrix": np.eye(4).tolist()}
    path = frames_scene(tmp_path, [good, {"transform_matrix": np.eye(4).tolist()}])
    expect_scene_error(path, "frame 1 has no \"file_path\"")
    frames_scene(tmp_path, [good, {"file_path": "a"}])
    expect_scene_error(path, "frame 1 has no \"transform_matrix\"")
    frames_scene(tmp_path, [{"file_path": 3, "transform_matrix": np.eye(4).tolist()}])
    expect_scene_error(path, "frame 0", "\"file_path\" must be a non-empty string")


@pytest.mark.parametrize("matrix, words", [
    (np.eye(4)[:3].tolist(), ["frame 0", "shape [3, 4]", "4x4"]),
    ([[1, 0, 0, 0], [0, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1]], ["frame 0", "not a 4x4 matrix"]),
    ([["a"] * 4] * 4, ["frame 0", "not a 4x4 matrix"]),
    ((np.eye(4) * [1, 1, 1, 1]).tolist()[:3] + [[0, 0, 0, float("nan")]], ["frame 0", "NaN or infinite"]),
    ((np.diag([2.0, 2.0, 2.0, 1.0])).tolist(), ["frame 0", "not orthonormal"]),
    ((np.array([[1, 0.01, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])).tolist(), ["not orthonormal"]),
    ((np.diag([1.0, 1.0, 1.0, 1.0]) + np.array([[0] * 4] * 3 + [[0, 0, 1, 0]])).tolist(), ["last row"]),
])
def test_bad_transform_matrix(tmp_path, matrix, words):
    path = frames_scene(tmp_path, [{"file_path": "a", "transform_matrix": matrix}])
    expect_scene_error(path, *words)


def test_orthonormal_rotations_within_tolerance_and_reflections_are_accepted(tmp_path):
    nearly = rotation_y(10.0)
    nearly[:3, :3] *= 1.0003  # |R^T R - I| = 6e-4, |det| - 1 = 9e-4: both < 1e-3
    mirror = np.diag([1.0, 1.0, -1.0, 1.0])  # |det| = 1
    frames_scene(tmp_path, [{"file_path": "a", "transform_matrix": m.tolist()} for m in (nearly, mirror)])
    assert len(load_scene_split(tmp_path)) == 2


def test_missing_image_names_image_and_transforms_file(tmp_path):
    path = frames_scene(tmp_path, [{"file_path": "a", "transform_matrix": np.eye(4).tolist()},
                                   {"file_path": "./train/r_7", "transform_matrix": np.eye(4).tolist()}])
    message = expect_scene_error(tmp_path / "train" / "r_7", "image not found", "frame 1", str(path), folder=tmp_path)
    assert "r_7.png" in message and "r_7.jpg" in message


def test_unreadable_image(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    frames_scene(tmp_path, [{"file_path": "bad", "transform_matrix": np.eye(4).tolist()}])
    expect_scene_error(tmp_path / "bad.png", "not a readable image", folder=tmp_path)


def test_image_size_differs_from_w_h(tmp_path):
    path = frames_scene(tmp_path, [{"file_path": "a.png", "transform_matrix": np.eye(4).tolist()}],
                        fl_x=2.0, w=4, h=2)
    expect_scene_error(tmp_path / "a.png", "image is 3x2", "w=4, h=2", str(path), folder=tmp_path)


def test_images_of_different_sizes_in_one_split(tmp_path):
    save(tmp_path / "big.png", np.zeros((4, 3, 3)))
    path = frames_scene(tmp_path, [{"file_path": "a", "transform_matrix": np.eye(4).tolist()},
                                   {"file_path": "big", "transform_matrix": np.eye(4).tolist()}])
    expect_scene_error(tmp_path / "big.png", "image is 3x4", "3x2", "share one size", str(path), folder=tmp_path)


def test_per_frame_cameras_that_differ(tmp_path):
    path = frames_scene(tmp_path, [{"file_path": "a", "fl_x": 2.0, "transform_matrix": np.eye(4).tolist()},
                                   {"file_path": "a", "fl_x": 3.0, "transform_matrix": np.eye(4).tolist()}])
    expect_scene_error(path, "frame 1", "fx=3", "fx=2", "share one camera")


def test_missing_focal(tmp_path):
    save(tmp_path / "a.png", np.zeros((2, 3, 3)))
    path = write_json(tmp_path / "transforms_train.json",
                      {"w": 3, "h": 2, "frames": [{"file_path": "a", "transform_matrix": np.eye(4).tolist()}]})
    expect_scene_error(path, "no focal length", "camera_angle_x", "fl_x")


def test_bad_focal_and_near_far_values(tmp_path):
    frame = [{"file_path": "a", "transform_matrix": np.eye(4).tolist()}]
    path = frames_scene(tmp_path, frame, camera_angle_x=4.0)
    expect_scene_error(path, "camera_angle_x", "(0, pi)")
    frames_scene(tmp_path, frame, fl_x=-1.0)
    expect_scene_error(path, "focal lengths must be positive")
    frames_scene(tmp_path, frame, fl_x="12")
    expect_scene_error(path, "\"fl_x\"", "finite number")
    frames_scene(tmp_path, frame, near=6.0, far=2.0)
    expect_scene_error(path, "near < far")
    frames_scene(tmp_path, frame, far=None)
    expect_scene_error(path, "\"far\"", "finite number")


# ----------------------------------------------------------------------------- write_scene (helper C)


def _rgba_frames(n, height=3, width=4, seed=0):
    rng = np.random.default_rng(seed)
    rgba = rng.integers(0, 256, size=(n, height, width, 4), dtype=np.uint8)
    rgba[:, 0, 0, 3] = 0  # transparent
    rgba[:, 0, 1, 3] = 255  # opaque
    return rgba


def test_write_scene_round_trips_through_the_loader(tmp_path):
    from inrcore.nerf.scenewrite import write_scene

    train, test = _rgba_frames(3), _rgba_frames(2, seed=1)
    train_poses = np.stack([rotation_y(40.0 * i, (0.5 * i, 1.0, 4.0)) for i in range(3)])
    test_poses = np.stack([rotation_y(-25.0 * i, (0.0, -1.0, 3.0)) for i in range(2)])
    folder = write_scene(tmp_path / "scene", {"train": (train, train_poses), "test": (test, test_poses)},
                         camera_angle_x=ANGLE, near=1.5, far=7.0, extra={"source": "cube.obj", "extent": 0.9})
    assert folder == tmp_path / "scene"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene"]  # no temporary folder left
    assert sorted(p.name for p in (folder / "train").iterdir()) == ["r_0.png", "r_1.png", "r_2.png"]
    meta = json.loads((folder / "transforms_train.json").read_text())
    assert meta["frames"][1]["file_path"] == "./train/r_1"
    assert meta["source"] == "cube.obj" and meta["extent"] == 0.9 and meta["camera_angle_x"] == ANGLE
    assert scene_splits(folder) == ("train", "test")
    for name, rgba, poses in (("train", train, train_poses), ("test", test, test_poses)):
        loaded = load_scene_split(folder, name, background=(0.0, 0.5, 1.0))
        pixels = rgba.astype(np.float64) / 255.0
        composited = pixels[..., :3] * pixels[..., 3:] + np.array([0.0, 0.5, 1.0]) * (1.0 - pixels[..., 3:])
        np.testing.assert_allclose(loaded.images, composited, atol=1e-6)
        np.testing.assert_array_equal(loaded.poses, poses.astype(np.float32))
        assert (loaded.near, loaded.far) == (1.5, 7.0)
        assert loaded.intrinsics == Intrinsics.from_camera_angle_x(4, 3, ANGLE)
    np.testing.assert_allclose(load_scene_split(folder, "train").images[:, 0, 0], 1.0)  # transparent on white


def test_write_scene_replaces_an_existing_scene_whole(tmp_path):
    from inrcore.nerf.scenewrite import write_scene

    folder = tmp_path / "scene"
    write_scene(folder, {"train": (_rgba_frames(3), np.stack([np.eye(4)] * 3)),
                         "val": (_rgba_frames(1), np.eye(4)[None])}, ANGLE, 2.0, 6.0)
    (folder / "stray.txt").write_text("left from before")
    write_scene(folder, {"train": (_rgba_frames(1, seed=7), np.eye(4)[None])}, ANGLE, 2.0, 6.0)
    assert sorted(p.name for p in folder.iterdir()) == ["train", "transforms_train.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene"]
    assert len(load_scene_split(folder, "train")) == 1


def test_write_scene_failing_midway_leaves_the_old_scene(tmp_path, monkeypatch):
    import types

    import inrcore.nerf.scenewrite as scenes

    folder = tmp_path / "scene"
    scenes.write_scene(folder, {"train": (_rgba_frames(2), np.stack([np.eye(4)] * 2))}, ANGLE, 2.0, 6.0)
    before = (folder / "transforms_train.json").read_text()

    def broken_dump(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(scenes, "json", types.SimpleNamespace(dumps=json.dumps, dump=broken_dump))
    with pytest.raises(OSError, match="disk full"):
        scenes.write_scene(folder, {"train": (_rgba_frames(1, seed=3), np.eye(4)[None])}, ANGLE, 2.0, 6.0)
    assert (folder / "transforms_train.json").read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene"]
    monkeypatch.undo()
    assert len(load_scene_split(folder, "train")) == 2


@pytest.mark.parametrize("splits, kwargs, message", [
    ({"train": (np.zeros((1, 2, 2, 4)), np.eye(4)[None])}, {}, "uint8"),
    ({"train": (np.zeros((2, 2, 2, 4), np.uint8), np.eye(4)[None])}, {}, r"\[2, 4, 4\]"),
    ({"train": (np.zeros((1, 2, 2, 4), np.uint8), 2 * np.eye(4)[None])}, {}, "pose 0 is not rigid"),
    ({"train": (np.zeros((1, 2, 2, 4), np.uint8), np.full((1, 4, 4), np.nan))}, {}, "NaN"),
    ({"../up": (np.zeros((1, 2, 2, 4), np.uint8), np.eye(4)[None])}, {}, "split names"),
    ({}, {}, "at least one split"),
    ({"train": (np.zeros((1, 2, 2, 4), np.uint8), np.eye(4)[None])}, {"extra": {"frames": []}}, "must not set frames"),
    ({"train": (np.zeros((1, 2, 2, 4), np.uint8), np.eye(4)[None])}, {"near": 6.0}, "near < far"),
    ({"train": (np.zeros((1, 2, 2, 4), np.uint8), np.eye(4)[None])}, {"camera_angle_x": 4.0}, "camera_angle_x"),
])
def test_write_scene_rejects_bad_input_and_writes_nothing(tmp_path, splits, kwargs, message):
    from inrcore.nerf.scenewrite import write_scene

    arguments = {"camera_angle_x": ANGLE, "near": 2.0, "far": 6.0, **kwargs}
    with pytest.raises(ValueError, match=message):
        write_scene(tmp_path / "scene", splits, **arguments)
    assert list(tmp_path.iterdir()) == []
