"""transmri.models: 3D autoencoders, classifiers and encoders for transfer learning.

Every model takes ``(N, 1, D, H, W)`` volumes, returns a dict from
``forward``, exposes its ``encoder``, ``config`` (for :func:`build_model`),
``layer_groups()``, ``code_shape()`` and ``num_parameters()``; see
:class:`TransferModel`.
"""

from transmri.models.backbones import (
    DenseNetEncoder,
    ResNetEncoder,
    densenet121_encoder,
    resnet10_encoder,
    resnet18_encoder,
)
from transmri.models.cae import ConvAutoEncoder
from transmri.models.classifier import EncoderClassifier, EncoderLoadResult
from transmri.models.conv import ConvDecoder, ConvEncoder
from transmri.models.deepbet import DeepbetEncoder, DeepbetNet, deepbet_encoder
from transmri.models.features import feature_maps, regional_feature_size, regional_features
from transmri.models.heads import ClassifierHead
from transmri.models.medicalnet import MedicalNetEncoder, medicalnet_encoder
from transmri.models.multitask import MultiTaskAutoEncoder
from transmri.models.projection import ContrastiveModel, ProjectionHead
from transmri.models.protocol import Encoder, TransferModel, count_parameters
from transmri.models.registry import available_models, build_model
from transmri.models.sfcn import SFCNEncoder, sfcn_encoder
from transmri.models.strided import StridedConvAutoEncoder, StridedEncoder
from transmri.models.vae import VariationalAutoEncoder, VariationalEncoder, kl_divergence

__all__ = [
    "ClassifierHead",
    "ContrastiveModel",
    "ConvAutoEncoder",
    "ConvDecoder",
    "ConvEncoder",
    "DeepbetEncoder",
    "DeepbetNet",
    "DenseNetEncoder",
    "Encoder",
    "EncoderClassifier",
    "EncoderLoadResult",
    "MedicalNetEncoder",
    "MultiTaskAutoEncoder",
    "ProjectionHead",
    "ResNetEncoder",
    "SFCNEncoder",
    "StridedConvAutoEncoder",
    "StridedEncoder",
    "TransferModel",
    "VariationalAutoEncoder",
    "VariationalEncoder",
    "available_models",
    "build_model",
    "count_parameters",
    "deepbet_encoder",
    "densenet121_encoder",
    "feature_maps",
    "kl_divergence",
    "medicalnet_encoder",
    "regional_feature_size",
    "regional_features",
    "resnet10_encoder",
    "resnet18_encoder",
    "sfcn_encoder",
]
