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
from transmri.pretrained.medicalnet import import_medicalnet, infer_medicalnet_architecture
from transmri.pretrained.sfcn import SFCN_AGE_BINS, import_sfcn
from transmri.pretrained.zoo import (
    ENCODER_FILES,
    USER_CHECKPOINTS,
    ZOO,
    check_encoder_ref,
    import_encoder,
    resolve_encoder,
)

__all__ = [
    "DEEPBET_SHA256",
    "ENCODER_FILES",
    "SFCN_AGE_BINS",
    "USER_CHECKPOINTS",
    "ZOO",
    "brain_mask",
    "check_encoder_ref",
    "deepbet_cache_dir",
    "deepbet_source_file",
    "import_deepbet",
    "import_encoder",
    "import_medicalnet",
    "import_sfcn",
    "infer_medicalnet_architecture",
    "load_deepbet_network",
    "resolve_encoder",
]
