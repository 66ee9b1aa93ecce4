"""Image quality metrics for novel-view synthesis: PSNR and SSIM.

Images are RGB (or any number of channels) in [0, 1], channels last: [H, W, C]. Both
functions take torch tensors (on any device) or numpy arrays.

PSNR = -10 log10(MSE) (the data range is 1), computed per image over its last three axes;
identical images give +inf.

SSIM follows Wang et al. 2004 with the usual settings: an 11 x 11 Gaussian window of
sigma 1.5 (weights exp(-x^2 / (2 sigma^2)) for x in -5..5, normalised), K1 = 0.01,
K2 = 0.03, data range 1, population (not sample) covariances. The SSIM map is computed
only where the window fits inside the image (no padding: [H - 10, W - 10]) and averaged
over that region and the channels. This equals scikit-image's
`structural_similarity(..., gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
data_range=1, channel_axis=-1)`, which filters with reflected borders and then crops the
5-pixel strip those borders touch.
"""

from __future__ import annotations

import math

import numpy as np
import torch


SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def psnr(image, reference):
    """Peak signal-to-noise ratio in dB of `image` against `reference`, both in [0, 1].

    Args:
        image, reference: [..., H, W, C] of the same shape; torch tensors or numpy arrays.
    Returns:
        -10 log10(mean squared error over H, W, C), one value per leading index: a tensor of
        shape [...] (0-d for a single image; differentiable) when `image` is a tensor, else a
        float for a single image or a float64 array [...] for a batch. Zero error gives inf.
    """
    if isinstance(image, torch.Tensor) or isinstance(reference, torch.Tensor):
        image, reference = _as_tensors(image, reference)
        _check_same_shape(tuple(image.shape), tuple(reference.shape), "psnr")
        mse = torch.mean((image - reference) ** 2, dim=(-3, -2, -1))
        return -10.0 * torch.log10(mse)
    image = np.asarray(image, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    _check_same_shape(image.shape, reference.shape, "psnr")
    mse = np.mean((image - reference) ** 2, axis=(-3, -2, -1))
    with np.errstate(divide="ignore"):
        value = -10.0 * np.log10(mse)
    return float(value) if np.ndim(value) == 0 else value


def ssim(image, reference) -> float:
    """Mean structural similarity (Wang et al. 2004) of `image` against `reference`.

    Args:
        image, reference: [H, W, C] in [0, 1] (H, W >= 11), torch tensors (any device) or
            numpy arrays. Computed in float64 on the tensors' device.
    Returns:
        the mean of the SSIM map over the [H - 10, W - 10] valid region and the C channels,
        a float in [-1, 1]; 1 for identical images.
    """
    x, y = _as_tensors(image, reference, dtype=torch.float64)
    _check_same_shape(tuple(x.shape), tuple(y.shape), "ssim")
    if x.dim() != 3:
        raise ValueError(f"ssim expects images of shape [H, W, C], got {tuple(x.shape)}")
    height, width, channels = x.shape
    if height < SSIM_WINDOW or width < SSIM_WINDOW:
        raise ValueError(f"ssim needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, got {height}x{width}")

    x = x.permute(2, 0, 1)  # [C, H, W]
    y = y.permute(2, 0, 1)
    # All five filtered maps at once: [5C, 1, H, W] -> [5C, 1, H - 10, W - 10].
    stack = torch.cat([x, y, x * x, y * y, x * y], dim=0).unsqueeze(1)
    weights = gaussian_window(SSIM_WINDOW, SSIM_SIGMA, device=x.device)  # [11]
    filtered = torch.nn.functional.conv2d(stack, weights.view(1, 1, -1, 1))  # along H
    filtered = torch.nn.functional.conv2d(filtered, weights.view(1, 1, 1, -1))  # along W
    ux, uy, uxx, uyy, uxy = filtered.squeeze(1).split(channels, dim=0)  # each [C, H', W']
    vx = uxx - ux * ux
    vy = uyy - uy * uy
    vxy = uxy - ux * uy
    c1 = SSIM_K1**2  # (K1 * data range)^2 with data range 1
    c2 = SSIM_K2**2
    ssim_map = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return float(ssim_map.mean())


def gaussian_window(size: int, sigma: float, device=None) -> torch.Tensor:
    """Normalised 1-D Gaussian weights [size] (float64), centred, exp(-x^2 / (2 sigma^2))."""
    x = torch.arange(size, dtype=torch.float64, device=device) - (size - 1) / 2.0
    weights = torch.exp(-(x * x) / (2.0 * sigma * sigma))
    return weights / weights.sum()


def _as_tensors(image, reference, dtype=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Both inputs as tensors on the device of whichever is already a tensor."""
    device = next((t.device for t in (image, reference) if isinstance(t, torch.Tensor)), None)
    out = []
    for value in (image, reference):
        tensor = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value, device=device)
        if dtype is not None:
            tensor = tensor.to(dtype)
        elif not tensor.is_floating_point():
            tensor = tensor.to(torch.float32)
        out.append(tensor)
    return out[0], out[1]


def _check_same_shape(a: tuple, b: tuple, what: str) -> None:
    if a != b:
        raise ValueError(f"{what}: image and reference shapes differ: {a} vs {b}")
    if len(a) < 3:
        raise ValueError(f"{what}: expected images of shape [..., H, W, C], got {a}")
    if math.prod(a) == 0:
        raise ValueError(f"{what}: empty images of shape {a}")
