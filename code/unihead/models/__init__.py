from unihead.models.unihead_model import FEATURES, UniHeadModel, batchnorm_layers, build_model, parameter_breakdown

__all__ = ["FEATURES", "UniHeadModel", "batchnorm_layers", "build_model", "parameter_breakdown"]
