import numpy as np
import pytest

from inrcore.raybatches import ShuffledRayBatches, flatten_rays, ray_chunks_from_arrays


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
