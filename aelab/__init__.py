"""aelab: interactive lessons on autoencoders and unsupervised pretraining."""
from aelab.utils import cached, get_device, get_profile, seed_everything

__version__ = "0.1.0"
