"""zhang2016's what-where parts: pooling that keeps its switches, unpooling with
known or fixed switches, and a classifier with a reconstructive decoding pathway.

A leaf module like aelab.models: imports only torch (and models' argument check).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aelab.models import _check

class SwitchMaxPool(nn.Module):
    """2x2 max-pool that also returns its switches (argmax positions)."""

    def forward(self, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.max_pool2d(X, 2, return_indices=True)  # C x H x W -> C x H/2 x W/2


class SwitchUnpool(nn.Module):
    """Unpool with known switches (SWWAE): each value returns to its argmax."""

    def __init__(self):
        super().__init__()
        self.unpool = nn.MaxUnpool2d(2)

    def forward(self, X, indices, output_size=None) -> torch.Tensor:
        return self.unpool(X, indices, output_size=output_size)  # h x w -> 2h x 2w


class FixedUnpool(nn.Module):
    """Unpool with fixed switches (SAE): top-left of each 2x2 window, else 0."""

    def forward(self, X, indices=None, output_size=None) -> torch.Tensor:
        N, C, h, w = X.shape
        H, W = (2 * h, 2 * w) if output_size is None else tuple(output_size)[-2:]
        out = X.new_zeros(N, C, H, W)
        out[:, :, 0:2 * h:2, 0:2 * w:2] = X  # C x h x w -> C x 2h x 2w (no indices)
        return out


class MacroLayerAE(nn.Module):
    """A classifier augmented with a mirrored decoding pathway (zhang2016 §3).

    Encoder eq. (1): a_l = f_l(a_{l-1}) = pool(ReLU(conv3x3(a_{l-1}))), a_0 = X;
    a linear classifier reads a_L. Decoder f_l^dec: unpool ("switches": SWWAE,
    "fixed": SAE), then conv3x3 (+ ReLU, except at the image).
    forward(X) returns (logits, recons), recons a list of (target, prediction):
      mode="first":     eq. (3), a^_L = a_L, a^_{l-1} = f_l^dec(a^_l); [(X, a^_0)]
      mode="all":       the same pathway, [(a_l, a^_l) for l = 0..L-1]
      mode="layerwise": a^_{l-1} = f_l^dec(a_l) from the CLEAN a_l, same pairs
    losses.joint_loss turns them into eq. (2). Targets are not detached.
    `in_size` (H = W of the input) sizes the classifier.
    """

    def __init__(self, *, in_channels=1, widths=(16, 32), num_classes=10,
                 unpool="switches", mode="first", in_size=28):
        super().__init__()
        _check("unpool", unpool, ("switches", "fixed"))
        _check("mode", mode, ("first", "all", "layerwise"))
        self.mode, chans, size = mode, (in_channels, *widths), in_size
        self.encoder = nn.ModuleList(
            nn.Sequential(nn.Conv2d(chans[l - 1], chans[l], 3, padding=1), nn.ReLU())
            for l in range(1, len(chans)))
        self.pool = SwitchMaxPool()
        self.unpool = SwitchUnpool() if unpool == "switches" else FixedUnpool()
        self.decoder = nn.ModuleList(  # decoder[l - 1] is f_l^dec: a_l -> a_{l-1}
            nn.Sequential(nn.Conv2d(chans[l], chans[l - 1], 3, padding=1),
                          *([nn.ReLU()] if l > 1 else []))
            for l in range(1, len(chans)))
        for _ in widths:
            size //= 2
        self.classifier = nn.Sequential(  # C x s x s -> C*s*s -> num_classes
            nn.Flatten(), nn.Linear(chans[-1] * size * size, num_classes))

    def _encode(self, X: torch.Tensor):
        acts, switches, sizes = [X], [], []
        for f in self.encoder:
            h = f(acts[-1])
            sizes.append(h.shape[-2:])
            h, idx = self.pool(h)  # c x H x W -> c x H/2 x W/2
            acts.append(h)
            switches.append(idx)
        return acts, switches, sizes

    def encode(self, X: torch.Tensor) -> torch.Tensor:
        return self._encode(X)[0][-1]

    def _decode(self, l, h, switches, sizes):
        """f_l^dec: a_l -> a_{l-1}, unpooling with layer l's switches."""
        h = self.unpool(h, switches[l - 1], output_size=sizes[l - 1])  # h -> 2h
        return self.decoder[l - 1](h)

    def forward(self, X: torch.Tensor):
        acts, switches, sizes = self._encode(X)
        L = len(self.encoder)
        logits = self.classifier(acts[L])
        if self.mode == "layerwise":
            return logits, [(acts[l - 1], self._decode(l, acts[l], switches, sizes))
                            for l in range(1, L + 1)]
        preds, h = {}, acts[L]
        for l in range(L, 0, -1):
            h = preds[l - 1] = self._decode(l, h, switches, sizes)
        levels = [0] if self.mode == "first" else range(L)
        return logits, [(acts[l], preds[l]) for l in levels]
