from unihead.models.unihead_model import FEATURES, UniHeadModel, build_model, parameter_breakdown

__all__ = ["FEATURES", "UniHeadModel", "build_model", "parameter_breakdown"]
