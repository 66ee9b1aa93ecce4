"""Test-time refinement of an Occupancy Network's code (not the authors'): the input cloud's points are
samples of the surface, so the completed shape's boundary should pass through them. Before a cloud's
shape is evaluated, its code is moved by a few Adam steps that bring the logits at the cloud's own points
towards 0 (occupancy probability 1/2), held near the encoder's code by a quadratic pull; the encoder's
point features and the network's weights stay as they are.

The objective of code z [B, C] encoded as z0: mean smooth-L1 (beta 1) of the logits at the cloud's points
plus `weight` times the mean of (z - z0)². The pull puts the objective's minimum near the encoder's code,
where the decoder was trained; over a few small steps Adam's rate bounds the change more than the pull does.
Faster refinement finds the cheap answer, a shape that is nowhere confident (BENCHMARKS.md: the rates,
steps and pulls measured).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def refinement_loss(logits: torch.Tensor, code: torch.Tensor, encoded: torch.Tensor, weight: float) -> torch.Tensor:
    """The objective for logits [..., T] at the cloud's points of code [B, C] encoded as encoded [B, C]:
    mean smooth-L1 (beta 1) of the logits from 0 plus weight * mean((code - encoded)²). A scalar."""
    surface = F.smooth_l1_loss(logits, torch.zeros_like(logits), beta=1.0)
    return surface + weight * (code - encoded).square().mean()


def refined_code(code: torch.Tensor, logits_at_cloud: Callable[[torch.Tensor], torch.Tensor], steps: int,
                 lr: float, weight: float) -> torch.Tensor:
    """code [B, C] after `steps` Adam steps at rate `lr` on `refinement_loss`, where
    `logits_at_cloud(code)` gives the logits [..., T] at the cloud's points for a code (differentiable in
    it). Gradients are taken even under torch.no_grad; the result is detached. With 0 steps, the code."""
    if steps < 0:
        raise ValueError(f"steps must be 0 or more, got {steps}")
    encoded = code.detach()
    if steps == 0:
        return encoded
    moving = encoded.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([moving], lr=lr)
    with torch.enable_grad():
        for _ in range(steps):
            loss = refinement_loss(logits_at_cloud(moving), moving, encoded, weight)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
    return moving.detach()
