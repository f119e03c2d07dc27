from unihead.models.unihead_model import (
    FEATURES,
    NETWORKS,
    SeparateHeadsModel,
    UnifiedHeadModel,
    UniHeadModel,
    batchnorm_layers,
    build_model,
    parameter_breakdown,
)

__all__ = ["FEATURES", "NETWORKS", "SeparateHeadsModel", "UniHeadModel", "UnifiedHeadModel", "batchnorm_layers",
           "build_model", "parameter_breakdown"]
