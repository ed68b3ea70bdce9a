"""What-where parts: pooling that keeps its switches, unpooling with known or
fixed switches, and a classifier with a mirrored decoding pathway.

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
    """Unpool with known switches ("what-where"): each value goes back to the
    position its max came from, zeros elsewhere (what nn.MaxUnpool2d does).

    Written as a scatter into each flattened H*W plane: the switches of
    F.max_pool2d index those planes. Unlike max_unpool2d, scatter has a
    batching rule under torch.func.vmap (fit_many trains many models at once).
    """

    def forward(self, X, indices, output_size=None) -> torch.Tensor:
        N, C, h, w = X.shape
        H, W = (2 * h, 2 * w) if output_size is None else tuple(output_size)[-2:]
        flat = X.new_zeros(N, C, H * W).scatter(2, indices.flatten(2), X.flatten(2))
        return flat.view(N, C, H, W)  # C x h x w -> C x 2h x 2w


class FixedUnpool(nn.Module):
    """Unpool with fixed switches: top-left of each 2x2 window, else 0."""

    def forward(self, X, indices=None, output_size=None) -> torch.Tensor:
        N, C, h, w = X.shape
        H, W = (2 * h, 2 * w) if output_size is None else tuple(output_size)[-2:]
        out = X.new_zeros(N, C, H, W)
        out[:, :, 0:2 * h:2, 0:2 * w:2] = X  # C x h x w -> C x 2h x 2w (no indices)
        return out


class MacroLayerAE(nn.Module):
    """A classifier augmented with a mirrored decoding pathway.

    Encoder: a_l = f_l(a_{l-1}) = pool(ReLU(conv3x3(a_{l-1}))), a_0 = X, one
    macro-layer per entry of `widths`; a linear classifier reads a_L. Decoder
    f_l^dec: unpool ("switches": known switches, "fixed": top-left, or a module
    called as unpool(X, switches, output_size)), then conv3x3 (+ ReLU, except
    at the image).
    forward(X) returns (logits, recons), recons a list of (target, prediction):
      mode="first":     a^_L = a_L, a^_{l-1} = f_l^dec(a^_l); [(X, a^_0)]
      mode="all":       the same pathway, [(a_l, a^_l) for l = 0..L-1]
      mode="layerwise": a^_{l-1} = f_l^dec(a_l) from the CLEAN a_l, same pairs
    losses.joint_loss weighs them into C + lambda * U. Targets are not
    detached. `in_size` (H = W of the input) sizes the classifier. The encoder,
    decoder and classifier are built in that order, so with one seed every
    mode and unpooling starts from the same encoder and classifier weights.
    """

    def __init__(self, *, in_channels=1, widths=(16, 32), num_classes=10,
                 unpool="switches", mode="first", in_size=28):
        super().__init__()
        if not isinstance(unpool, nn.Module):
            _check("unpool", unpool, ("switches", "fixed"))
        _check("mode", mode, ("first", "all", "layerwise"))
        self.mode = mode
        self.unpool_kind = unpool if isinstance(unpool, str) else type(unpool).__name__
        self.in_channels, self.widths, self.in_size = in_channels, tuple(widths), in_size
        chans, size = (in_channels, *widths), in_size
        self.encoder = nn.ModuleList(
            nn.Sequential(nn.Conv2d(chans[k - 1], chans[k], 3, padding=1), nn.ReLU())
            for k in range(1, len(chans)))
        self.pool = SwitchMaxPool()
        self.unpool = (unpool if isinstance(unpool, nn.Module) else
                       SwitchUnpool() if unpool == "switches" else FixedUnpool())
        self.decoder = nn.ModuleList(  # decoder[l - 1] is f_l^dec: a_l -> a_{l-1}
            nn.Sequential(nn.Conv2d(chans[k], chans[k - 1], 3, padding=1),
                          *([nn.ReLU()] if k > 1 else []))
            for k in range(1, len(chans)))
        for _ in widths:
            size //= 2  # 28 -> 14 -> 7 -> 3
        self.classifier = nn.Sequential(  # C x s x s -> C*s*s -> num_classes
            nn.Flatten(), nn.Linear(chans[-1] * size * size, num_classes))

    def extra_repr(self) -> str:
        # In the repr, so that the cache (which keys a model by repr and
        # weights) tells apart modes that share every weight.
        return f"mode={self.mode!r}, unpool={self.unpool_kind!r}"

    def _encode(self, X: torch.Tensor):
        acts, switches, sizes = [X], [], []
        for f in self.encoder:
            h = f(acts[-1])
            sizes.append(h.shape[-2:])
            h, idx = self.pool(h)  # c x H x W -> c x H/2 x W/2
            acts.append(h)
            switches.append(idx)
        return acts, switches, sizes

    def layers(self, X: torch.Tensor) -> list[torch.Tensor]:
        """[a_1, ..., a_L]: every macro-layer's pooled output."""
        return self._encode(X)[0][1:]

    def encode(self, X: torch.Tensor) -> torch.Tensor:
        return self._encode(X)[0][-1]

    def _decode(self, k, h, switches, sizes):
        """f_l^dec: a_l -> a_{l-1}, unpooling with layer l's switches."""
        h = self.unpool(h, switches[k - 1], output_size=sizes[k - 1])  # h -> 2h
        return self.decoder[k - 1](h)

    def forward(self, X: torch.Tensor):
        acts, switches, sizes = self._encode(X)
        L = len(self.encoder)
        logits = self.classifier(acts[L])
        if self.mode == "layerwise":
            return logits, [(acts[k - 1], self._decode(k, acts[k], switches, sizes))
                            for k in range(1, L + 1)]
        preds, h = {}, acts[L]
        for k in range(L, 0, -1):
            h = preds[k - 1] = self._decode(k, h, switches, sizes)
        levels = [0] if self.mode == "first" else range(L)
        return logits, [(acts[k], preds[k]) for k in levels]


def inverter(model: MacroLayerAE, depth: int, *, unpool: str = "switches"
             ) -> MacroLayerAE:
    """A decoding pathway from macro-layer `depth` of a trained `model` down to
    the image: a fresh MacroLayerAE(mode="first") of its first `depth`
    macro-layers, their weights copied and frozen, so only the decoder (and
    the unused classifier, frozen too) is new. Train it on the reconstruction
    alone to see what layer `depth` of the classifier keeps of the image."""
    if not 1 <= depth <= len(model.encoder):
        raise ValueError(f"depth must be 1..{len(model.encoder)} (the model's "
                         f"macro-layers), got {depth}")
    net = MacroLayerAE(in_channels=model.in_channels, widths=model.widths[:depth],
                       unpool=unpool, mode="first", in_size=model.in_size)
    for mine, theirs in zip(net.encoder, model.encoder):
        mine.load_state_dict(theirs.state_dict())
    net.encoder.requires_grad_(False)
    net.classifier.requires_grad_(False)
    return net
