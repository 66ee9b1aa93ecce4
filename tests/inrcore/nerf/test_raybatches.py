import numpy as np
import pytest

from inrcore.nerf.raybatches import ShuffledRayBatches, flatten_rays, ray_chunks_from_arrays


def _arrays(n):
    ids = np.arange(n, dtype=np.float32)
    origins = np.stack([ids, ids, ids], axis=1)
    return origins, origins + 0.5, origins + 0.25


def test_chunks_cover_the_arrays_once():
    read, count = ray_chunks_from_arrays(*_arrays(10), chunk_size=4)
    assert count == 3
    firsts = [read(i)[0][:, 0].tolist() for i in range(count)]
    assert firsts == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_batches_keep_rays_whole_and_visit_every_chunk():
    read, count = ray_chunks_from_arrays(*_arrays(1000), chunk_size=100)
    reads = []

    def counting_read(i):
        reads.append(i)
        return read(i)

    batches = ShuffledRayBatches(counting_read, count, batch_size=50, chunks_in_buffer=2, seed=3)
    seen = np.zeros(1000)
    for _ in range(400):  # 20000 rays drawn: 20 per ray on average
        origins, directions, colours = next(batches)
        assert origins.shape == directions.shape == colours.shape == (50, 3)
        # a ray's three arrays stay together
        np.testing.assert_array_equal(directions, origins + 0.5)
        np.testing.assert_array_equal(colours, origins + 0.25)
        np.add.at(seen, origins[:, 0].astype(int), 1)
    # only two chunks in memory at a time, yet every chunk was read, in a permutation per pass
    assert set(reads) == set(range(10))
    assert sorted(reads[:10]) == list(range(10))
    assert seen.min() > 0
    assert 15 < seen.mean() < 25


def test_same_seed_same_batches():
    read, count = ray_chunks_from_arrays(*_arrays(300), chunk_size=64)
    a = ShuffledRayBatches(read, count, 32, chunks_in_buffer=2, seed=7)
    b = ShuffledRayBatches(read, count, 32, chunks_in_buffer=2, seed=7)
    for _ in range(10):
        np.testing.assert_array_equal(next(a)[0], next(b)[0])


def test_bad_chunk_is_reported():
    def read(i):
        return np.zeros((4, 3)), np.zeros((3, 3)), np.zeros((4, 3))

    with pytest.raises(ValueError, match="ray chunk 0"):
        ShuffledRayBatches(read, 1, 2)


def test_flatten_rays():
    out = flatten_rays([np.zeros((2, 3, 4, 3), dtype=np.float64)])
    assert out[0].shape == (24, 3) and out[0].dtype == np.float32


def test_shuffled_rays_of_a_split_are_its_pixels_in_a_seeded_order():
    from inrcore.geometry.cameras import Intrinsics
    from inrcore.nerf.scenes import SceneSplit

    pose = np.eye(4, dtype=np.float32)
    pose[2, 3] = 4.0  # a camera at z = 4 looking down -z
    images = np.arange(2 * 2 * 3, dtype=np.float32).reshape(1, 2, 2, 3) / 12
    split = SceneSplit("train", images, pose[None], Intrinsics(2, 2, 1.0, 1.0, 1.0, 1.0), ("r_0",), 2.0, 6.0)
    from inrcore.nerf.raybatches import in_memory_ray_batches, shuffled_rays_of_split

    origins, directions, colours = shuffled_rays_of_split(split, seed=1)
    np.testing.assert_array_equal(origins, np.tile([0.0, 0.0, 4.0], (4, 1)))
    # pixel (row 0, column 0) looks up-left: direction (-0.5, 0.5, -1) normalised, with its own colour
    first = np.flatnonzero(np.all(colours == images[0, 0, 0], axis=1))
    np.testing.assert_allclose(directions[first[0]], np.array([-0.5, 0.5, -1.0]) / np.sqrt(1.5), atol=1e-6)
    assert sorted(map(tuple, colours)) == sorted(map(tuple, images.reshape(-1, 3)))
    again = shuffled_rays_of_split(split, seed=1)[2]
    np.testing.assert_array_equal(colours, again)
    batch = next(in_memory_ray_batches(split, batch_size=3, seed=1))
    assert [a.shape for a in batch] == [(3, 3)] * 3
