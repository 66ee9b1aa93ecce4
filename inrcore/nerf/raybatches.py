"""Shuffled batches of rays streamed from chunked storage.

A scene's rays are stored as fixed-size chunks (in the pipeline, chunks of a Zarr array;
in memory, slices of arrays). `ShuffledRayBatches` keeps a buffer of a few chunks picked at
random, draws each batch uniformly from the buffer, and swaps one buffered chunk for a new
random one every `chunk_size / batch_size` batches, so every ray is seen about equally
often while only the buffer is ever in memory. It knows nothing about the storage: it
calls `read_chunk(i)` -> (origins [n, 3], directions [n, 3], colours [n, 3]) float32.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence

import numpy as np


RayChunk = tuple[np.ndarray, np.ndarray, np.ndarray]


class ShuffledRayBatches:
    """An endless iterator of (origins [B, 3], directions [B, 3], colours [B, 3]) numpy batches."""

    def __init__(self, read_chunk: Callable[[int], RayChunk], n_chunks: int, batch_size: int,
                 chunks_in_buffer: int = 4, seed: int = 0):
        if n_chunks <= 0:
            raise ValueError("ShuffledRayBatches needs at least one chunk of rays")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.read_chunk = read_chunk
        self.n_chunks = int(n_chunks)
        self.batch_size = int(batch_size)
        self.rng = np.random.default_rng(seed)
        self.order: list[int] = []
        slots = min(chunks_in_buffer, self.n_chunks)
        self.buffer: list[RayChunk] = [self._read(self._next_chunk()) for _ in range(slots)]
        self.draws_until_swap = self._swap_period()
        self.next_slot = 0

    def _next_chunk(self) -> int:
        if not self.order:  # a fresh random permutation of all chunks, then take from it in turn
            self.order = list(self.rng.permutation(self.n_chunks))
        return int(self.order.pop())

    def _read(self, index: int) -> RayChunk:
        origins, directions, colours = (np.asarray(a, dtype=np.float32) for a in self.read_chunk(index))
        if not (len(origins) == len(directions) == len(colours)) or origins.shape[1:] != (3,):
            raise ValueError(f"ray chunk {index}: expected three [n, 3] arrays of one length")
        return origins, directions, colours

    def _swap_period(self) -> int:
        if len(self.buffer) >= self.n_chunks:
            return -1  # everything is in memory: never swap
        rays = sum(len(c[0]) for c in self.buffer) / len(self.buffer)
        return max(1, int(round(rays / self.batch_size)))

    def __iter__(self) -> Iterator[RayChunk]:
        return self

    def __next__(self) -> RayChunk:
        if self.draws_until_swap == 0:
            self.buffer[self.next_slot] = self._read(self._next_chunk())
            self.next_slot = (self.next_slot + 1) % len(self.buffer)
            self.draws_until_swap = self._swap_period()
        if self.draws_until_swap > 0:
            self.draws_until_swap -= 1
        sizes = np.array([len(c[0]) for c in self.buffer])
        flat = self.rng.integers(0, sizes.sum(), self.batch_size)
        which = np.searchsorted(np.cumsum(sizes), flat, side="right")
        offsets = flat - (np.cumsum(sizes) - sizes)[which]
        return tuple(np.concatenate([self.buffer[c][k][offsets[which == c]] for c in range(len(self.buffer))])
                     for k in range(3))


def ray_chunks_from_arrays(origins: np.ndarray, directions: np.ndarray, colours: np.ndarray,
                           chunk_size: int) -> tuple[Callable[[int], RayChunk], int]:
    """A `read_chunk` over in-memory arrays [N, 3] cut into chunks of `chunk_size`, and the chunk count."""
    n = len(origins)
    count = max(1, -(-n // chunk_size))

    def read(i: int) -> RayChunk:
        part = slice(i * chunk_size, min(n, (i + 1) * chunk_size))
        return origins[part], directions[part], colours[part]

    return read, count


def flatten_rays(arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
    """[N, H, W, 3] arrays -> [N*H*W, 3] float32 arrays."""
    return [np.ascontiguousarray(np.asarray(a, dtype=np.float32).reshape(-1, 3)) for a in arrays]


def shuffled_rays_of_split(split, seed: int = 0) -> list[np.ndarray]:
    """Every pixel of a `inrcore.nerf.scenes.SceneSplit` as a ray, in one random order drawn from `seed`:
    [origins, unit directions, colours], each [N*H*W, 3] float32."""
    import torch

    from inrcore.geometry.rays import rays_from_cameras

    origins, directions = rays_from_cameras(torch.from_numpy(np.asarray(split.poses)), split.intrinsics)
    arrays = flatten_rays([origins.numpy(), directions.numpy(), split.images])
    order = np.random.default_rng(seed).permutation(len(arrays[0]))
    return [np.ascontiguousarray(a[order]) for a in arrays]


def in_memory_ray_batches(split, batch_size: int, seed: int = 0, chunk_size: int = 65536) -> ShuffledRayBatches:
    """Shuffled batches over all rays of a split held in memory (`shuffled_rays_of_split`)."""
    read, count = ray_chunks_from_arrays(*shuffled_rays_of_split(split, seed), chunk_size=chunk_size)
    return ShuffledRayBatches(read, count, batch_size, chunks_in_buffer=count, seed=seed)
