"""Corruptions for denoising autoencoders (dong2017 §3.2), as batched tensor ops.

All take float images in [0,1] (N, C, H, W) and a torch.Generator for
reproducibility, and return a new tensor; the clean X stays the target.
"""
from __future__ import annotations

import torch

from aelab import validate

KINDS = ("none", "gaussian", "big_block", "small_blocks")


def _as_float(X: torch.Tensor) -> torch.Tensor:
    """uint8 pixels (0-255) as floats in [0, 1]; other dtypes as they are.
    (Noise added to uint8 would wrap around, and clipping would make it 1.0.)"""
    return X.float().div_(255) if X.dtype == torch.uint8 else X


def gaussian_noise(X: torch.Tensor, noise_std: float, *, clip: bool = True,
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """Add N(0, noise_std^2) to every pixel ("pixel-level Gaussian noise"); X
    may also be flat rows N x D."""
    validate.non_negative("noise_std", noise_std, hint="use 0 for no noise")
    X = _as_float(validate.images("X", X, who="gaussian_noise", any_shape=True))
    return _noisy(X, noise_std, clip, generator)


def block_mask(X: torch.Tensor, *, num_blocks: int = 1, block_size: int = 14,
               fill: float = 0.0, generator: torch.Generator | None = None
               ) -> torch.Tensor:
    """Set square blocks of pixels to `fill` ("masking noise", dong2017).

    num_blocks=1, block_size=14: one big block (inpainting a quarter of MNIST);
    num_blocks=8, block_size=4: many small blocks, which dong2017 found best.
    Each image gets its own block positions; blocks may overlap.
    """
    X = _as_float(validate.images("X", X, who="block_mask"))
    num_blocks = validate.count("num_blocks", num_blocks, hint="use 0 for none")
    block_size = validate.count("block_size", block_size, hint="in pixels, e.g. 4")
    validate.finite("fill", fill, hint="a pixel value such as 0.0")
    return _masked(X, num_blocks, block_size, fill, generator)


# The two corruptions on checked float images: corrupt() checks its X once (a
# range check reads every pixel) and calls these, not the public functions.
def _noisy(X, noise_std, clip, generator):
    noise = torch.randn(X.shape, generator=generator, device="cpu").to(X.device)
    X_tilde = X + noise_std * noise
    return X_tilde.clamp(0, 1) if clip else X_tilde


def _masked(X, num_blocks, block_size, fill, generator):
    n, _, h, w = X.shape
    if block_size > min(h, w):
        raise ValueError(f"block_size {block_size} is larger than the {h}x{w} image: "
                         "choose a smaller block")
    if num_blocks == 0 or block_size == 0:
        return X.clone()
    top = torch.randint(0, h - block_size + 1, (n, num_blocks), generator=generator)
    left = torch.randint(0, w - block_size + 1, (n, num_blocks), generator=generator)
    rows = torch.arange(h).view(1, 1, h, 1)
    cols = torch.arange(w).view(1, 1, 1, w)
    top, left = top.view(n, num_blocks, 1, 1), left.view(n, num_blocks, 1, 1)
    inside = ((rows >= top) & (rows < top + block_size)
              & (cols >= left) & (cols < left + block_size))  # n, blocks, h, w
    mask = inside.any(dim=1, keepdim=True).to(X.device)  # n, 1, h, w
    return X.masked_fill(mask, fill)


def corrupt(X: torch.Tensor, kind: str = "gaussian", level: float = 0.3, *,
            generator: torch.Generator | None = None) -> torch.Tensor:
    """One entry point for widgets: kind in {'none', 'gaussian', 'big_block',
    'small_blocks'}; level is the noise std, or the masked fraction of the image."""
    validate.choice("corruption", kind, KINDS)
    level = validate.non_negative("noise level", level, hint="use 0 for none")
    X = _as_float(validate.images("X", X, who="corrupt"))
    h = X.shape[-1]
    if kind in ("big_block", "small_blocks") and level > 1:
        raise ValueError(f"corrupt: {kind}'s level is the share of the image masked, "
                         f"so at most 1; got {level:g} (e.g. 0.25 for a quarter)")
    if kind == "none" or level == 0:
        return X.clone()
    if kind == "gaussian":
        return _noisy(X, level, True, generator)
    if kind == "big_block":  # one block covering `level` of the area
        size = max(1, min(h, round(h * min(level, 1.0) ** 0.5)))
        return _masked(X, 1, size, 0.0, generator)
    # small_blocks: 4x4 blocks, as many as cover `level` of the area
    count = max(1, round(min(level, 1.0) * h * h / 16))
    return _masked(X, count, 4, 0.0, generator)
