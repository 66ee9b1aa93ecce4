"""Small networks with known zero sets, for tests of queries on fields (one hidden layer each).

- `octahedron(r, c)`: (|x - c|_1 - r) / sqrt(3), exactly, with 6 ReLUs: the distance to the
  nearest face plane (a lower bound of the distance to the solid outside, equal near faces).
- `icosphere(r, c)`: (4/12) sum_k softplus_3(n_k . (x - c)) - const over the 12 icosahedron
  directions n_k (a spherical 5-design): a smooth radial-looking field whose zero set is the
  sphere of radius r to about 3e-4, with unit gradient within 0.15 degrees of radial there and
  |gradient| about 0.45 on it, at most 1 everywhere (so sphere tracing is safe).

A network is moved to centre c by its first layer's bias: b <- b - W c.
"""

from __future__ import annotations

import math

import torch

from inrcore.fields.networks import LayerSpec, evaluate_network


def _centred(weight: torch.Tensor, centre) -> torch.Tensor:
    return -(weight @ torch.tensor(centre, dtype=torch.float32))


def octahedron(radius: float = 0.5, centre=(0.0, 0.0, 0.0)):
    weight = torch.cat([torch.eye(3), -torch.eye(3)])
    scale = 1.0 / math.sqrt(3.0)
    spec = (LayerSpec("dense", 3, 6), LayerSpec("relu"), LayerSpec("dense", 6, 1))
    params = {"0_weight": weight, "0_bias": _centred(weight, centre),
              "2_weight": torch.full((1, 6), scale), "2_bias": torch.tensor([-radius * scale])}
    return spec, params


def icosahedron_directions() -> torch.Tensor:
    golden = (1.0 + math.sqrt(5.0)) / 2.0
    points = []
    for s1 in (-1.0, 1.0):
        for s2 in (-1.0, 1.0):
            points += [(0.0, s1, s2 * golden), (s1, s2 * golden, 0.0), (s2 * golden, 0.0, s1)]
    directions = torch.tensor(points, dtype=torch.float32)
    return directions / directions.norm(dim=1, keepdim=True)


def icosphere(radius: float = 0.5, centre=(0.0, 0.0, 0.0), beta: float = 3.0):
    weight = icosahedron_directions()
    k = len(weight)
    spec = (LayerSpec("dense", 3, k), LayerSpec("softplus", beta=beta), LayerSpec("dense", k, 1))
    params = {"0_weight": weight, "0_bias": torch.zeros(k), "2_weight": torch.full((1, k), 4.0 / k),
              "2_bias": torch.zeros(1)}
    # The level through radius r along a generic direction (the field is radial to ~1e-4).
    probe = radius * torch.tensor([[0.36, 0.48, 0.8]])
    params["2_bias"] = -evaluate_network(spec, params, probe)[0]
    params["0_bias"] = _centred(weight, centre)
    return spec, params
