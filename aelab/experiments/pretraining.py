"""Lesson 01's experiment: autoencoder pretraining with few labels (barletta2024).

The study, with its protocol repaired:
- one fixed test set of >= 1,000 images (the paper used 350) and >= 3 seeds;
- nested, class-balanced labeled subsets drawn from the unlabeled pool;
- every frozen-feature arm gets a softmax head trained to convergence
  (full batch, all heads at once: `aelab.train_probes`) on the same subsets;
- trained arms (the small CNN, the fine-tuned encoder) use Adam and at least
  `min_steps` optimizer steps, so a 20-label run is not cut off after 20 steps;
- logits go to cross-entropy (no softmax inside the model, so no clipping);
- baselines the paper lacks: logistic regression on pixels and on PCA.

`run(profile)` returns a `Study`; everything is cached on disk, so a lesson
cell re-runs instantly and an interrupted sweep resumes where it stopped.
"""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from aelab import losses, metrics
from aelab.data import load_dataset
from aelab.models import ConvAutoencoder, EncoderClassifier, SmallCNN
from aelab.splits import make_splits, to_float
from aelab.sweep import fit_many, train_probes
from aelab.train import History, fit, predict
from aelab.utils import cached, get_device, get_profile, say_once, tensor_hash

PROFILES = {
    "fast": dict(source="embedded", pool_size=1000, fashion_pool_size=1000,
                 ae_epochs=10, sizes=(20, 100), seeds=(0, 1), clf_epochs=5,
                 min_steps=10, batch_size=32, ae_batch_size=64),
    "classroom": dict(source="embedded", pool_size=None, fashion_pool_size=None,
                      ae_epochs=20, sizes=(20, 50, 100, 200, 500, 1000),
                      seeds=(0, 1, 2), clf_epochs=60, min_steps=300, batch_size=32,
                      ae_batch_size=64),
    # The paper: 50 sizes 160, 320, ..., 8000, 3 repeats, 100 epochs, batch 16.
    "paper": dict(source=None, pool_size=None, fashion_pool_size=None, ae_epochs=50,
                  sizes=(20, 50, 100) + tuple(160 * k for k in range(1, 51)),
                  seeds=(0, 1, 2), clf_epochs=100, min_steps=0, batch_size=16,
                  ae_batch_size=64),
}
# Frozen-encoder arms (softmax head only) and trained arms (whole network).
AUTOENCODERS = {  # name: (pretraining dataset, penalty, lambda)
    "AE": ("mnist", None, 0.0),
    "sparse AE (L1 activations)": ("mnist", "activations", 1e-3),
    "sparse AE (L1 weights)": ("mnist", "weights", 1e-3 / 392),
    "Fashion sparse AE": ("fashion_mnist", "activations", 1e-3),
}
# Part of every cache key: bump it when a change here changes results.
VERSION = 4
PROBE = dict(num_steps=300, lr=0.05, weight_decay=1e-3, scale="global")
PROBE_ARMS = (*AUTOENCODERS, "random encoder", "pixels (logistic)", "PCA (logistic)")
TRAINED_ARMS = ("CNN (from scratch)", "AE fine-tuned")
# barletta2024 Fig. 4 means over n <= 1000 (from the authors' result files), %.
PAPER = {"CNN (from scratch)": 81.3, "AE": 78.7, "sparse AE (L1 activations)": 77.1,
         "random encoder": 65.9, "Fashion sparse AE": 65.6}


def sparse_loss(penalty: str | None, lam: float):
    """The pretraining objective: MSE plus lam * an L1 penalty (or none)."""
    def loss_fn(model, batch):
        X, = batch
        z = model.encode(X)
        loss = F.mse_loss(model.decoder(z), X)
        if penalty == "activations":  # what barletta2024's code penalised
            loss = loss + lam * losses.l1_activations(z)
        elif penalty == "weights":  # what its text says (lam rescaled, see losses)
            loss = loss + lam * losses.l1_weights(model)
        return loss
    return loss_fn


@dataclass
class Study:
    profile: str
    settings: dict
    pretrained: dict = field(default_factory=dict)  # name -> dict (model, history, ...)
    rows: list = field(default_factory=list)  # one dict per (method, size, seed)
    confusion: dict = field(default_factory=dict)
    provenance: dict = field(default_factory=dict)
    X_test: torch.Tensor | None = None  # MNIST test images (uint8) and labels
    y_test: torch.Tensor | None = None

    def accuracy(self, method: str) -> tuple[list, torch.Tensor]:
        """Sizes and a (seeds, sizes) accuracy tensor for one method."""
        sizes = sorted({r["size"] for r in self.rows if r["method"] == method})
        seeds = sorted({r["seed"] for r in self.rows if r["method"] == method})
        acc = torch.tensor([[next(r["accuracy"] for r in self.rows
                                  if r["method"] == method and r["size"] == n
                                  and r["seed"] == s) for n in sizes] for s in seeds])
        return sizes, acc

    @property
    def methods(self) -> list:
        return list(dict.fromkeys(r["method"] for r in self.rows))


def load_data(settings: dict):
    """MNIST train/test, the unlabeled pool, and Fashion-MNIST for cross-domain."""
    train = load_dataset("mnist", "train", source=settings["source"])
    test = load_dataset("mnist", "test", source=settings["source"])
    fashion = load_dataset("fashion_mnist", "train", source=settings["source"])
    pool = make_splits(train.y, seed=0, pool_size=settings["pool_size"]).pool
    fashion_pool = make_splits(fashion.y, seed=0,
                               pool_size=settings["fashion_pool_size"]).pool
    return train, test, fashion, pool, fashion_pool


def pretrain(name: str, X: torch.Tensor, X_test: torch.Tensor, settings: dict,
             *, seed: int = 0, quiet: bool = False) -> dict:
    """Train one autoencoder of AUTOENCODERS (cached). Returns its model, history,
    health check and reconstructions of 32 test images after every epoch."""
    dataset, penalty, lam = AUTOENCODERS[name]
    config = dict(kind="pretrain", version=VERSION, name=name, n=len(X), seed=seed,
                  epochs=settings["ae_epochs"], batch=settings["ae_batch_size"],
                  data=tensor_hash(X), test=tensor_hash(X_test))

    def compute():
        torch.manual_seed(seed)
        model = ConvAutoencoder()
        shown, snaps = X_test[:32], []
        history = fit(model, (X,), sparse_loss(penalty, lam),
                      num_epochs=settings["ae_epochs"], lr=1e-3,
                      batch_size=settings["ae_batch_size"], test_data=(X_test,),
                      seed=seed, quiet=quiet, desc=f"pretrain {name}",
                      callback=lambda m, e, h: snaps.append(
                          (predict(m, shown).clamp(0, 1) * 255).to(torch.uint8)))
        return dict(state=model.state_dict(), history=history.to_dict(),
                    snapshots=torch.stack(snaps) if snaps else torch.empty(0))

    out = cached(config, compute, kind="pretrain")
    model = ConvAutoencoder()
    model.load_state_dict(out["state"])
    model.eval()
    X_hat = predict(model, X_test[:512])
    return dict(model=model, history=History.from_dict(out["history"]),
                snapshots=out["snapshots"], dataset=dataset,
                check=metrics.check_reconstruction(to_float(X_test[:512]), X_hat))


@torch.no_grad()
def features(encoder, X: torch.Tensor) -> torch.Tensor:
    """Frozen features: the encoder's output, flattened."""
    return predict(lambda xb: encoder(xb).flatten(1), X, device=get_device())


def pca_features(X_pool: torch.Tensor, *Xs: torch.Tensor, k: int = 196) -> tuple:
    """Project each of Xs onto the top-k principal components of the pool
    (196 = the AE code size). One SVD, however many sets are projected."""
    P = to_float(X_pool).flatten(1).double()
    mean = P.mean(0)
    _, _, V = torch.linalg.svd(P - mean, full_matrices=False)
    return tuple(((to_float(X).flatten(1).double() - mean) @ V[:k].T).float()
                 for X in Xs)


def _rows(method, sizes, seed, predictions, y_test):
    return [dict(method=method, size=n, seed=seed,
                 accuracy=metrics.accuracy(p, y_test),
                 check_ok=metrics.check_classifier(y_test, p).ok)
            for n, p in zip(sizes, predictions)]


def probe_arm(method: str, feats_fn, train, test, pool, settings, *, quiet=True):
    """Softmax heads on frozen features for every (size, seed), cached.
    feats_fn(seed) -> (F_pool, F_test). Returns rows and seed-0 predictions."""
    sizes = [n for n in settings["sizes"] if n <= len(pool)]
    config = dict(kind="probe", version=VERSION, probe=PROBE, method=method, sizes=sizes, seeds=settings["seeds"],
                  pool=tensor_hash(train.X[pool]), test=tensor_hash(test.X),
                  settings={k: settings[k] for k in ("ae_epochs", "ae_batch_size")})

    def compute():
        rows, first = [], None
        for seed in settings["seeds"]:
            F_pool, F_test = feats_fn(seed)
            splits = make_splits(train.y[pool], seed=seed)
            heads = train_probes(F_pool, train.y[pool],
                                 [splits.labeled(n) for n in sizes], num_classes=10,
                                 **PROBE)
            preds = heads.predict(F_test)
            rows += _rows(method, sizes, seed, preds, test.y)
            first = preds if first is None else first
        return dict(rows=rows, predictions=first, sizes=sizes)

    return cached(config, compute, kind="probe")


def trained_arms(encoder, train, test, pool, settings, *, quiet=False):
    """The small CNN from scratch and the fine-tuned pretrained encoder, every
    (size, seed), through the engine's many-model path (cached per size)."""
    sizes = [n for n in settings["sizes"] if n <= len(pool)]
    rows, preds = [], {}
    for n in sizes:
        epochs = max(settings["clf_epochs"],
                     -(-settings["min_steps"] * settings["batch_size"] // n))
        config = dict(kind="trained", version=VERSION, n=n, seeds=settings["seeds"], epochs=epochs,
                      batch=settings["batch_size"], pool=tensor_hash(train.X[pool]),
                      test=tensor_hash(test.X), encoder=tensor_hash(*encoder.state_dict().values()))

        def compute():
            models, datas, seeds = [], [], []
            for arm in TRAINED_ARMS:
                for seed in settings["seeds"]:
                    torch.manual_seed(seed)
                    models.append(SmallCNN() if arm.startswith("CNN") else
                                  EncoderClassifier(copy.deepcopy(encoder), freeze=False))
                    idx = pool[make_splits(train.y[pool], seed=seed).labeled(n)]
                    datas.append((train.X[idx], train.y[idx]))
                    seeds.append(seed)
            fit_many(models, datas, losses.classification_objective,
                     num_epochs=epochs, lr=1e-3,
                     batch_size=settings["batch_size"], seeds=seeds, quiet=quiet,
                     desc=f"{n} labels: {len(models)} models")
            out, first, per_arm = [], [], len(settings["seeds"])
            for k, model in enumerate(models):
                p = predict(model, test.X).argmax(1)
                out += _rows(TRAINED_ARMS[k // per_arm], [n], seeds[k], [p], test.y)
                if k % per_arm == 0:  # seed-0 predictions, for confusion matrices
                    first.append(p)
            return dict(rows=out, predictions=first)

        result = cached(config, compute, kind="trained")
        rows += result["rows"]
        preds[n] = dict(zip(TRAINED_ARMS, result["predictions"]))
    return rows, preds


def pretrain_all(settings, train, test, fashion, pool, fashion_pool, *,
                 quiet: bool = False) -> dict:
    """Every autoencoder of AUTOENCODERS, each on its own dataset's pool."""
    fashion_test = load_dataset("fashion_mnist", "test", source=settings["source"],
                                quiet=True)
    out = {}
    for name, (dataset, _, _) in AUTOENCODERS.items():
        if dataset == "mnist":
            X, X_test = train.X[pool], test.X
        else:
            X, X_test = fashion.X[fashion_pool], fashion_test.X
        out[name] = pretrain(name, X, X_test, settings, quiet=quiet)
    return out


def run(profile: str | None = None, *, quiet: bool = False) -> Study:
    """The whole study for a profile (cached step by step)."""
    profile = get_profile(profile)
    settings = PROFILES[profile]
    study = Study(profile, settings)
    train, test, fashion, pool, fashion_pool = load_data(settings)
    study.provenance = {d.name + " " + d.split: str(d.provenance)
                        for d in (train, test, fashion)}
    say_once(f"pretraining:{profile}",
             f"aelab: profile {profile}: pool {len(pool):,} unlabeled MNIST images, "
             f"test {len(test):,}, label budgets {list(settings['sizes'])[:8]}"
             f"{'...' if len(settings['sizes']) > 8 else ''}, seeds {settings['seeds']}")
    study.pretrained = pretrain_all(settings, train, test, fashion, pool, fashion_pool,
                                    quiet=quiet)
    X_pool = train.X[pool]

    def once(compute):
        """Features that do not depend on the seed: computed at most once, and
        only if a probe arm is not already in the cache."""
        compute = functools.cache(compute)
        return lambda seed: compute()

    arms = {name: once(lambda enc=ae["model"].encoder:
                       (features(enc, X_pool), features(enc, test.X)))
            for name, ae in study.pretrained.items()}

    def random_encoder(seed):
        torch.manual_seed(1000 + seed)
        enc = ConvAutoencoder().encoder
        return features(enc, X_pool), features(enc, test.X)

    arms["random encoder"] = random_encoder
    arms["pixels (logistic)"] = once(lambda: (to_float(X_pool).flatten(1),
                                              to_float(test.X).flatten(1)))
    arms["PCA (logistic)"] = once(lambda: pca_features(X_pool, X_pool, test.X))
    for method, feats_fn in arms.items():
        result = probe_arm(method, feats_fn, train, test, pool, settings)
        study.rows += result["rows"]
        study.confusion[method] = dict(zip(result["sizes"], result["predictions"]))
    rows, preds = trained_arms(study.pretrained["AE"]["model"].encoder, train, test,
                               pool, settings, quiet=quiet)
    study.rows += rows
    for n, by_arm in preds.items():
        for arm, p in by_arm.items():
            study.confusion.setdefault(arm, {})[n] = p
    study.X_test, study.y_test = test.X, test.y
    return study
