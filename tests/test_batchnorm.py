"""fit leaves BatchNorm with the statistics of its final weights, so a
network reads the same in eval mode as in training (lesson 03's autoencoders
read 3x worse in eval mode with the running averages kept during training)."""
import copy

import torch
import torch.nn.functional as F
from torch import nn

from aelab.models import EncoderClassifier
from aelab.train import fit


def conv_bn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Conv2d(4, 1, 3, padding=1))


def test_fit_sets_batchnorm_statistics_to_the_final_weights_over_the_data():
    X = torch.rand(96, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    model = conv_bn()
    fit(model, (X,), lambda m, b: F.mse_loss(m(b[0]), b[0]), num_epochs=3,
        batch_size=32, lr=1e-2, device="cpu", quiet=True)
    with torch.no_grad():
        pre = model[0](X)  # the BatchNorm's input, with the final weights
    bn = model[1]
    # three equal batches: the average of their means is the mean over all data
    assert torch.allclose(bn.running_mean, pre.mean((0, 2, 3)), atol=1e-5)
    assert torch.allclose(bn.running_var, pre.var((0, 2, 3)), rtol=0.05)
    assert not model.training and bn.momentum == 0.1  # momentum given back


def test_fit_leaves_a_frozen_encoders_batchnorm_alone():
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
    encoder[1].running_mean.fill_(0.5)
    before = copy.deepcopy(encoder.state_dict())
    clf = EncoderClassifier(encoder, freeze=True, in_shape=(1, 8, 8))
    X, y = torch.rand(64, 1, 8, 8), torch.randint(0, 10, (64,))
    fit(clf, (X, y), lambda m, b: F.cross_entropy(m(b[0]), b[1]), num_epochs=2,
        batch_size=32, device="cpu", quiet=True)
    for k, v in encoder.state_dict().items():
        assert torch.equal(v, before[k]), k
