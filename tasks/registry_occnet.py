"""MLflow pyfunc loader of registered Occupancy Networks (see `tasks.registry.register_occnet`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from inrcore.device import resolve_device
from inrcore.shapespace.occnet import load_occnet, occupancy_field


WEIGHTS_FILE = "model.safetensors"


class OccupancyPredictor:
    """predict(points [N, 3], params={"cloud": [x0, y0, z0, x1, ...]}) -> occupancy probabilities [N] of
    the shape completed from that point cloud (flattened; both in the normalised frame)."""

    def __init__(self, weights_path: str):
        self.params, self.config, self.metadata = load_occnet(weights_path)

    def predict(self, model_input, params: Optional[dict] = None) -> np.ndarray:
        import torch

        cloud = (params or {}).get("cloud")
        if cloud is None or len(cloud) < 3:
            raise ValueError("an occupancy network needs the input cloud: predict(points, params={'cloud': [x, y, z, ...]})")
        points = torch.from_numpy(np.asarray(model_input, dtype=np.float32).reshape(-1, 3))
        cloud = np.asarray(cloud, np.float32).reshape(-1, 3)
        field = occupancy_field(self.params, self.config, cloud, resolve_device("auto"))
        return torch.sigmoid(-field(points)).cpu().numpy()


def _load_pyfunc(data_path: str) -> OccupancyPredictor:
    return OccupancyPredictor(str(Path(data_path) / WEIGHTS_FILE))
