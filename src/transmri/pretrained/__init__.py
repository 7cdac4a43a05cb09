"""transmri.pretrained: the encoder zoo (public checkpoints -> transmri encoders).

Converting reads a third-party checkpoint once and writes safetensors plus a
card with provenance; afterwards only the safetensors are loaded.
"""

from transmri.pretrained.deepbet import (
    DEEPBET_SHA256,
    brain_mask,
    deepbet_cache_dir,
    deepbet_source_file,
    import_deepbet,
    load_deepbet_network,
)
from transmri.pretrained.zoo import ZOO, import_encoder

__all__ = [
    "DEEPBET_SHA256",
    "ZOO",
    "brain_mask",
    "deepbet_cache_dir",
    "deepbet_source_file",
    "import_deepbet",
    "import_encoder",
    "load_deepbet_network",
]
