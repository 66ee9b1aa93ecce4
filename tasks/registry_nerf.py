"""MLflow pyfunc loader of registered radiance fields (see `tasks.registry.register_radiance_field`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import torch

from inrcore.device import resolve_device
from inrcore.nerf.models import render_rays_in_chunks
from inrcore.nerf.training import load_radiance_field


WEIGHTS_FILE = "model.safetensors"


class RadianceFieldPredictor:
    """predict(rays [N, 6]: origins, unit directions) -> colours [N, 3] composited on the background."""

    def __init__(self, weights_path: str):
        self.weights_path = weights_path
        self.renderer, self.config, self.metadata = load_radiance_field(weights_path, resolve_device("auto"))
        # predict() moves rays to where the weights were loaded

    def predict(self, model_input, params: Optional[dict] = None) -> np.ndarray:
        rays = np.asarray(model_input, dtype=np.float32).reshape(-1, 6)
        device = resolve_device("auto")
        origins = torch.from_numpy(rays[:, :3]).to(device)
        directions = torch.from_numpy(rays[:, 3:]).to(device)
        return render_rays_in_chunks(self.renderer, origins, directions, self.config.chunk_rays)["rgb"].cpu().numpy()


def _load_pyfunc(data_path: str) -> RadianceFieldPredictor:
    return RadianceFieldPredictor(str(Path(data_path) / WEIGHTS_FILE))
