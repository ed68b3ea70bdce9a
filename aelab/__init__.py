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
                <phase>_lr and <phase>_batch_size (plain lr and batch_size where
                every phase shares one), budget or budgets (<phase>_budget where
                a phase has its own), seeds
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

# What `import aelab` offers, imported on first use (PEP 562): the command line
# (`aelab --help`, `aelab run --list`) then answers without loading torch and
# scipy, and a lesson's `aelab.fit(...)` imports the trainer when it first runs.
_MODULES = ("cache", "corrupt", "data", "device", "exercises", "losses", "metrics",
            "models", "plot", "profile", "progress", "study", "verdicts")
_NAMES = {
    "load_dataset": "aelab.data",
    "Loader": "aelab.splits", "make_splits": "aelab.splits",
    "frozen_features": "aelab.probes", "train_probes": "aelab.probes",
    "fit_many": "aelab.sweep",
    "History": "aelab.train", "evaluate": "aelab.train", "fit": "aelab.train",
    "predict": "aelab.train",
    "cached": "aelab.utils", "get_device": "aelab.utils", "get_profile": "aelab.utils",
    "seed_everything": "aelab.utils",
}

__version__ = "0.1.0"
__all__ = [*_MODULES, *_NAMES]


def __getattr__(name: str):
    import importlib

    if name in _MODULES:
        value = importlib.import_module(f"aelab.{name}")
    elif name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    else:
        raise AttributeError(f"module 'aelab' has no attribute {name!r}")
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__():
    return sorted({*globals(), *__all__})
