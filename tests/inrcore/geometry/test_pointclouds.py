from pathlib import Path

import numpy as np
import pytest

from inrcore.errors import ShapeError
from inrcore.geometry.pointclouds import estimate_normals, load_point_cloud


ROOT = Path(__file__).resolve().parents[3]


def sphere(n=1000, radius=0.5, seed=0, centre=(0.0, 0.0, 0.0)):
    d = np.random.default_rng(seed).normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return d * radius + np.asarray(centre), d


def write_ply(path, points, normals=None):
    props = ["x", "y", "z"] + (["nx", "ny", "nz"] if normals is not None else [])
    rows = points if normals is None else np.hstack([points, normals])
    header = ["ply", "format ascii 1.0", f"element vertex {len(points)}"]
    header += [f"property float {p}" for p in props] + ["end_header"]
    path.write_text("\n".join(header) + "\n" + "\n".join(" ".join(f"{v:.7f}" for v in r) for r in rows) + "\n")


def test_xyz_with_and_without_normals(tmp_path):
    points, normals = sphere(200)
    np.savetxt(tmp_path / "a.xyz", np.hstack([points, 3 * normals]))
    p, n = load_point_cloud(tmp_path / "a.xyz")
    assert np.allclose(p, points) and np.allclose(n, normals)  # normals rescaled to unit length
    np.savetxt(tmp_path / "b.xyz", points)
    p, n = load_point_cloud(tmp_path / "b.xyz")
    assert np.allclose(p, points) and n is None


def test_ply_and_npz(tmp_path):
    points, normals = sphere(150)
    write_ply(tmp_path / "a.ply", points, normals)
    p, n = load_point_cloud(tmp_path / "a.ply")
    assert np.allclose(p, points, atol=1e-6) and np.allclose(n, normals, atol=1e-6)
    write_ply(tmp_path / "b.ply", points)
    assert load_point_cloud(tmp_path / "b.ply")[1] is None
    np.savez(tmp_path / "c.npz", points=points, normals=normals)
    p, n = load_point_cloud(tmp_path / "c.npz")
    assert np.allclose(p, points) and np.allclose(n, normals)


@pytest.mark.parametrize("name, make, problem", [
    ("nan.xyz", lambda p: np.savetxt(p, np.vstack([sphere(200)[0], [[np.nan, 0, 0]]])), "1 points have NaN or infinite"),
    ("dup.xyz", lambda p: np.savetxt(p, np.vstack([sphere(200)[0]] * 2)), "200 duplicate points"),
    ("few.xyz", lambda p: np.savetxt(p, sphere(50)[0]), "only 50 points; at least 100 are needed"),
    ("flat.xyz", lambda p: np.savetxt(p, np.c_[np.random.default_rng(0).random((300, 2)), np.zeros(300)]),
     "all points lie on one plane"),
    ("cols.xyz", lambda p: np.savetxt(p, np.zeros((200, 4))), "expected 3 or 6 numbers per row"),
    ("text.xyz", lambda p: p.write_text("hello world\n"), "not a readable point cloud"),
    ("empty.xyz", lambda p: p.write_bytes(b""), "file is empty"),
    ("nopoints.npz", lambda p: np.savez(p, xyz=np.zeros((3, 3))), "npz file has no 'points' array (it has: xyz)"),
    ("zeron.npz", lambda p: np.savez(p, points=sphere(200)[0], normals=np.zeros((200, 3))),
     "200 normals are zero, NaN or infinite"),
    ("shape.npz", lambda p: np.savez(p, points=np.zeros((200, 2))), "points must be an N x 3 array"),
])
def test_bad_point_clouds_name_the_file_and_the_problem(tmp_path, name, make, problem):
    path = tmp_path / name
    make(path)
    with pytest.raises(ShapeError) as info:
        load_point_cloud(path)
    assert str(info.value).startswith(f"{path}: ") and problem in str(info.value)


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(ShapeError, match="file does not exist"):
        load_point_cloud(tmp_path / "none.xyz")
    with pytest.raises(ShapeError, match=r"unsupported point cloud format '\.pts'"):
        load_point_cloud(tmp_path / "a.pts")


@pytest.mark.parametrize("scale", [(1.0, 1.0, 1.0), (1.0, 0.6, 0.3)])
def test_estimated_normals_match_the_outward_normals_of_an_ellipsoid(scale):
    d = sphere(2000)[1]
    scale = np.asarray(scale)
    points = d * 0.5 * scale
    truth = d / scale  # gradient of |x / (0.5 scale)|^2, outward
    truth /= np.linalg.norm(truth, axis=1, keepdims=True)
    normals = estimate_normals(points, k=16)
    cos = np.einsum("ij,ij->i", normals, truth)
    assert np.allclose(np.linalg.norm(normals, axis=1), 1.0)
    assert cos.min() > 0.8 and np.median(cos) > 0.99  # every one outward, and accurate


def test_separate_pieces_are_each_oriented_outward():
    d0, d1 = sphere(300, seed=0)[1], sphere(300, seed=1)[1]
    points = np.vstack([0.1 * d0, 0.1 * d1 + (5.0, 0.0, 0.0)])  # two pieces the 8-neighbour graph cannot join
    normals = estimate_normals(points, k=8, path="two.xyz")
    assert (np.einsum("ij,ij->i", normals, np.vstack([d0, d1])) > 0.8).all()


def agreement(normals, truth):
    """Fraction of estimated normals on the same side as the true ones."""
    return float(np.mean(np.einsum("ij,ij->i", normals, truth) > 0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noisy_sphere_normals_point_outward(seed):
    points, truth = sphere(3000, radius=0.5, seed=seed)
    points = points + np.random.default_rng(100 + seed).normal(scale=0.005 * 0.5, size=points.shape)  # sigma 0.5% of r
    assert agreement(estimate_normals(points), truth) >= 0.97


def noisy_bunny(n, seed, noise=0.005):
    """n points sampled on datasets/meshes/bunny.obj with their face normals, plus Gaussian
    noise of `noise` x the bounding-box diagonal."""
    import trimesh

    mesh = trimesh.load(ROOT / "datasets" / "meshes" / "bunny.obj", process=False)
    points, faces = trimesh.sample.sample_surface(mesh, n, seed=seed)
    diagonal = np.linalg.norm(mesh.bounds[1] - mesh.bounds[0])
    points = points + np.random.default_rng(seed).normal(scale=noise * diagonal, size=points.shape)
    return points, mesh.face_normals[faces]


# Seeds 0 and 1 came out 95% and 2% right when orientation spread from the point farthest from
# the centroid (an ear tip: thin, its normal 66 degrees off the radius) along a tree weighted by
# 1 - |n_i . n_j| alone, which crosses the thin ears to their far side; 98.8% and 99.4% now.
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noisy_bunny_normals_are_consistently_oriented(seed):
    points, truth = noisy_bunny(10_000, seed)
    assert agreement(estimate_normals(points), truth) >= 0.97


def test_written_ply_clouds_read_back_with_and_without_normals(tmp_path):
    from inrcore.geometry.pointclouds import load_point_cloud, write_point_cloud_ply

    rng = np.random.default_rng(0)
    points = rng.uniform(-1, 1, (150, 3))
    normals = np.tile([[0.0, 0.6, 0.8]], (150, 1))
    write_point_cloud_ply(tmp_path / "with.ply", points, normals)
    read, read_normals = load_point_cloud(tmp_path / "with.ply")  # binary PLY: one structured array
    assert np.allclose(read, points, atol=1e-6) and np.allclose(read_normals, normals, atol=1e-6)
    write_point_cloud_ply(tmp_path / "without.ply", points)
    read, read_normals = load_point_cloud(tmp_path / "without.ply")
    assert np.allclose(read, points, atol=1e-6) and read_normals is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["with.ply", "without.ply"]  # no temporary files left
    with pytest.raises(ValueError, match="normals for"):
        write_point_cloud_ply(tmp_path / "bad.ply", points, normals[:3])
