"""Autoencoders and classifiers for the lessons (a leaf module: imports only torch).

Images are float tensors in [0, 1], N x C x H x W (channels_last works too).
Where each model comes from:

- barletta2024: ConvAutoencoder (its defaults), SmallCNN, EncoderClassifier
- alberti2017:  EncoderClassifier(head="mlp"); its SCAE configurations are
                written in the lesson (a paper's architecture lives there)
- dong2017:     its SkipAutoencoder is written in lesson 03 (lessons/03_skips.py)
- zhang2016:    written in its lesson (lessons/05_joint.py)
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
}
INITS = {
    "default": None,  # keep PyTorch's own (uniform, scaled by fan-in)
    "xavier": nn.init.xavier_uniform_,
    "kaiming": lambda w: nn.init.kaiming_normal_(w, nonlinearity="relu"),
    "normal": lambda w: nn.init.normal_(w, std=0.01),
    "orthogonal": nn.init.orthogonal_,
}
POOLS = ("max", "avg", "stride")


def _check(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ValueError(f"{name}={value!r}: use one of {', '.join(allowed)}")


def init_weights(model: nn.Module, init: str = "default") -> nn.Module:
    """Re-initialise every conv/linear weight in place, biases to zero.

    "default" leaves PyTorch's initialisation alone; "normal" is N(0, 0.01^2).
    """
    _check("init", init, INITS)
    if INITS[init] is None:
        return model
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            INITS[init](m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def _is_down(layer: nn.Module) -> bool:
    """Does this encoder layer halve H and W?"""
    strided = isinstance(layer, nn.Conv2d) and layer.stride[0] == 2
    return strided or isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d))


class ConvAutoencoder(nn.Module):
    """Convolutional autoencoder of barletta2024 §4.1, widened for alberti2017.

    Defaults, for a 1x28x28 input (z is 4x7x7):
        encoder: conv 1->8 + ReLU, max-pool, conv 8->4 + ReLU, max-pool
        decoder: conv 4->4 + ReLU, up x2, conv 4->8 + ReLU, up x2, conv 8->1
    No output activation, as in the authors' code. `widths` sets the depth
    (1 to 6 stages); the decoder mirrors it unless `decoder_widths` is given.
    When H does not halve evenly (28 -> 14 -> 7 -> 3), forward() upsamples to
    the sizes the encoder saw, so X_hat always has the shape of X.
    """

    def __init__(self, *, in_channels=1, widths=(8, 4), kernel_size=3,
                 activation="relu", pool="max", init="default",
                 decoder_widths=None, upsample="nearest"):
        super().__init__()
        widths = tuple(widths)
        dec_widths = widths[::-1] if decoder_widths is None else tuple(decoder_widths)
        if not 1 <= len(widths) <= 6 or len(dec_widths) != len(widths):
            raise ValueError(f"need 1 to 6 widths, decoder_widths of the same length; "
                             f"got {widths} and {dec_widths}")
        if kernel_size % 2 == 0:
            raise ValueError("kernel_size must be odd, so padding keeps H x W")
        _check("activation", activation, ACTIVATIONS)
        _check("pool", pool, POOLS)
        act, pad, c = ACTIVATIONS[activation], kernel_size // 2, in_channels
        encoder = []
        for n in widths:  # 1x28x28 -> 8x14x14 -> 4x7x7 by default
            if pool == "stride":  # c x H x W -> n x ceil(H/2) x ceil(W/2)
                encoder += [nn.Conv2d(c, n, kernel_size, stride=2, padding=pad), act()]
            else:  # c x H x W -> n x H x W -> n x H/2 x W/2 (rounded down)
                encoder += [nn.Conv2d(c, n, kernel_size, padding=pad), act(),
                            nn.MaxPool2d(2) if pool == "max" else nn.AvgPool2d(2)]
            c = n
        decoder = []
        for n in dec_widths:  # c x h x w -> n x h x w -> n x 2h x 2w
            decoder += [nn.Conv2d(c, n, kernel_size, padding=pad), act(),
                        nn.Upsample(scale_factor=2, mode=upsample)]
            c = n
        decoder.append(nn.Conv2d(c, in_channels, kernel_size, padding=pad))
        self.encoder = nn.Sequential(*encoder)
        self.decoder = nn.Sequential(*decoder)
        init_weights(self, init)

    def _sizes(self, size) -> list:
        """H x W seen before each downsampling layer, for an input of `size`."""
        sizes, (h, w) = [], tuple(int(v) for v in size)
        for layer in self.encoder:
            if _is_down(layer):
                if min(h, w) < 2 and not isinstance(layer, nn.Conv2d):
                    raise ValueError(f"{tuple(size)} input is too small for "
                                     f"{len(self.encoder)} encoder layers: use fewer "
                                     "widths or larger images")
                sizes.append((h, w))
                # a stride-2 conv rounds up (padding k//2), pooling rounds down
                h, w = ((h + 1) // 2, (w + 1) // 2) if isinstance(layer, nn.Conv2d) \
                    else (h // 2, w // 2)
        return sizes

    def encode(self, X: torch.Tensor) -> torch.Tensor:
        """The code z (C x h x w) of images X (N x C x H x W)."""
        c = self.encoder[0].in_channels
        if X.dim() != 4 or X.shape[1] != c:
            raise ValueError(f"ConvAutoencoder takes images N x {c} x H x W; got "
                             f"shape {tuple(X.shape)}: reshape flat vectors with "
                             f"X.view(-1, {c}, H, W), or build the model with "
                             f"in_channels={X.shape[1] if X.dim() == 4 else '...'}")
        self._sizes(X.shape[-2:])  # a clear error for images too small
        return self.encoder(X)

    def decode(self, z: torch.Tensor, size=(28, 28)) -> torch.Tensor:
        """Images of H x W = `size` from codes z: pass X.shape[-2:] so that every
        upsampling lands on the size the encoder saw (28 -> 14 -> 7 -> 3 -> 7)."""
        sizes, h = self._sizes(size), z
        for layer in self.decoder:
            if isinstance(layer, nn.Upsample) and sizes:  # back to the encoder's H x W
                h = F.interpolate(h, size=sizes.pop(), mode=layer.mode,
                                  align_corners=layer.align_corners)
            else:
                h = layer(h)
        return h

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(X), X.shape[-2:])


class EncoderClassifier(nn.Module):
    """Any encoder plus a classification head; returns logits (no softmax).

    barletta2024 §4.2 freezes the pretrained encoder and trains a linear head;
    alberti2017 §3.2 also uses head="mlp" (3 fully connected layers). With
    freeze=True the encoder's parameters stop requiring gradients and it stays
    in eval mode even after .train(). The encoder is shared, not copied: pass
    copy.deepcopy(ae.encoder) to keep the autoencoder trainable.
    """

    def __init__(self, encoder: nn.Module, *, num_classes=10, head="linear",
                 hidden=256, freeze=True, in_shape=(1, 28, 28), dropout=0.0):
        super().__init__()
        _check("head", head, ("linear", "mlp"))
        self.encoder, self.freeze = encoder, freeze
        self.num_features = _num_features(encoder, in_shape)
        drop = [nn.Dropout(dropout)] if dropout else []
        if head == "linear":  # N x features -> N x num_classes
            layers = [*drop, nn.Linear(self.num_features, num_classes)]
        else:
            layers = [*drop, nn.Linear(self.num_features, hidden), nn.ReLU(),
                      *drop, nn.Linear(hidden, hidden), nn.ReLU(),
                      *drop, nn.Linear(hidden, num_classes)]
        self.head = nn.Sequential(nn.Flatten(), *layers)
        if freeze:
            encoder.requires_grad_(False)
        self.train()

    def train(self, mode: bool = True) -> EncoderClassifier:
        super().train(mode)
        if self.freeze:  # frozen features: BatchNorm statistics and dropout stay put
            self.encoder.eval()
        return self

    def features(self, X: torch.Tensor) -> torch.Tensor:
        return self.encoder(X).flatten(1)  # N x C x h x w -> N x (C*h*w)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(X))


def _num_features(encoder: nn.Module, in_shape) -> int:
    """Flattened size of the encoder's output, from a dry run on zeros."""
    p = next(encoder.parameters(), None)
    X = torch.zeros(1, *in_shape) if p is None else p.new_zeros(1, *in_shape)
    was_training = encoder.training
    encoder.eval()  # a dry run must not touch BatchNorm's running statistics
    with torch.no_grad():
        n = encoder(X).flatten(1).shape[1]
    encoder.train(was_training)
    return n


class SmallCNN(nn.Module):
    """barletta2024 §4.4's baseline CNN; returns logits (no softmax).

    conv 1->5 + ReLU, max-pool, conv 5->5 + ReLU, max-pool, flatten,
    dropout 0.2, linear 245->10. `.encoder` and `.head` as in EncoderClassifier.
    """

    def __init__(self, *, in_channels=1, widths=(5, 5), dropout=0.2,
                 num_classes=10, in_size=28):
        super().__init__()
        layers, c, size = [], in_channels, in_size
        for w in widths:  # c x s x s -> w x s x s -> w x s/2 x s/2 (1x28x28 -> 5x14x14)
            layers += [nn.Conv2d(c, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            c, size = w, size // 2
        self.encoder = nn.Sequential(*layers)
        self.head = nn.Sequential(  # 5x7x7 -> 245 -> 10
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(c * size * size, num_classes))

    def features(self, X: torch.Tensor) -> torch.Tensor:
        return self.encoder(X).flatten(1)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(X))
