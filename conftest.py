"""Defaults for every pytest run, the lessons' nbval kernels included (they
inherit this process's environment): the fast profile and no network."""
import os

os.environ.setdefault("AELAB_PROFILE", "fast")
os.environ.setdefault("AELAB_OFFLINE", "1")
