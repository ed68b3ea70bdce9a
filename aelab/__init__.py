"""aelab: interactive lessons on autoencoders and unsupervised pretraining.

Public API (re-exports only; see each module for the details):
    load_dataset, make_splits, Loader      datasets, splits, batches  (data, splits)
    models, losses, metrics, corrupt       the papers' pieces
    fit, evaluate, predict, History        the generic training loop  (train)
    fit_many                               many small models at once  (sweep)
    frozen_features, train_probes          heads on frozen features   (probes)
    study, verdicts                        results, claims, paired effects, gates
    profile                                the seeds a lesson runs (AELAB_SEEDS)
    exercises                              exercise checks
    get_device, get_profile, seed_everything, cached                  (utils)
"""
from aelab import (corrupt, data, exercises, losses, metrics, models, plot, profile,
                   study, verdicts)
from aelab.data import load_dataset
from aelab.splits import Loader, make_splits
from aelab.probes import frozen_features, train_probes
from aelab.sweep import fit_many
from aelab.train import History, evaluate, fit, predict
from aelab.utils import cached, get_device, get_profile, seed_everything

__version__ = "0.1.0"
__all__ = ["corrupt", "data", "exercises", "losses", "metrics", "models", "plot",
           "profile", "study", "verdicts", "load_dataset", "Loader", "make_splits", "fit_many",
           "frozen_features", "train_probes", "History", "evaluate",
           "fit", "predict", "cached", "get_device", "get_profile", "seed_everything"]
