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
    progress, device, cache                plumbing, by what it does

Glossary (one word, one meaning, in the library and the lessons):
    profile     fast (CI, seconds), classroom (2-core laptop, minutes), paper (GPU)
    SETTINGS    a lesson's per-profile settings: <phase>_epochs or <phase>_steps,
                <phase>_lr, <phase>_batch_size, budgets, seeds
    seed        one paired replicate: the same labeled subset and initialisation
                in every arm; AELAB_SEEDS / `aelab run --seeds` replaces them
    budget      how many labels a classifier or probe is trained on
    arm         one method of a study (e.g. "AE", "none"); a model is (arm, seed)
    features(X) a model's representation, always one N x D tensor; every layer's
                output, where a lesson needs it, has its own name (layers)
    problem()   History's one-line account of what went wrong ('' if nothing);
                stalled is True when there is one
    gate        a model's health before a claim may rest on it: beats the best
                constant image (or chance) and its loss reached a plateau
    check       an exercise check only (aelab.exercises.check): it tests a
                student's answer and passes or says the fix in one line; a
                trained model's health is metrics.reconstruction_health /
                classifier_health, and argument checks live in aelab.validate
    margin      the smallest effect that matters, written in the lesson, in the
                claim's unit
    effect      the per-seed paired difference, its mean and 95% bootstrap interval
    verdict     REPRODUCED / NOT REPRODUCED / INCONCLUSIVE / NOT TESTED
"""
from aelab import (cache, corrupt, data, device, exercises, losses, metrics, models, plot,
                   profile, progress, study, verdicts)
from aelab.data import load_dataset
from aelab.splits import Loader, make_splits
from aelab.probes import frozen_features, train_probes
from aelab.sweep import fit_many
from aelab.train import History, evaluate, fit, predict
from aelab.utils import cached, get_device, get_profile, seed_everything

__version__ = "0.1.0"
__all__ = ["cache", "device", "progress", "corrupt", "data", "exercises", "losses", "metrics", "models", "plot",
           "profile", "study", "verdicts", "load_dataset", "Loader", "make_splits", "fit_many",
           "frozen_features", "train_probes", "History", "evaluate",
           "fit", "predict", "cached", "get_device", "get_profile", "seed_everything"]
