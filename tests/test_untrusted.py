"""Cache files are data, never code: a file carrying a pickle payload is
refused (and recomputed), and its payload never runs."""
import torch
import torch.nn.functional as F
from torch import nn

from aelab.train import fit, fit_key
from aelab.utils import cache_path, cached

MARK = []


class Payload:
    """Unpickling this calls MARK.append: proof that the payload ran."""

    def __reduce__(self):
        return (MARK.append, ("the payload ran",))


def plant(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        torch.save({"x": Payload()}, f)
    # the file really carries the payload: a plain unpickler would run it
    assert b"append" in path.read_bytes()


def test_a_cache_entry_with_a_pickle_payload_is_recomputed_and_never_run(capsys):
    config = dict(kind="test", n=1)
    plant(cache_path(config, "run"))
    assert cached(config, lambda: {"x": torch.ones(2)}, kind="run")["x"].sum() == 2
    assert MARK == [] and "refused" in capsys.readouterr().out


def test_a_fit_checkpoint_with_a_pickle_payload_is_retrained_and_never_run(capsys):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 4), nn.Unflatten(1, (1, 2, 2)))
    X = torch.rand(8, 1, 2, 2)

    def loss(model, batch):
        return F.mse_loss(model(batch[0]), batch[0])

    settings = dict(num_epochs=1, lr=1e-3, batch_size=128, optimizer="adam",
                    weight_decay=0.0, test_data=None, metrics=None, clip_grad=None,
                    seed=0, watch=None, device="cpu")
    plant(cache_path(fit_key(model, (X,), loss, **settings), "fit"))
    history = fit(model, (X,), loss, num_epochs=1, quiet=True, cache=True,
                  device="cpu")
    assert not history.cached and MARK == []
    assert "refused" in capsys.readouterr().out
