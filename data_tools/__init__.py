"""Shared data layer of the PAM engine; no model code lives here and nothing here imports a stage package.

Subpackages, each importing only those before it: ``io`` (files, videos, configs) <- ``maps`` (condition maps,
``ConditionBundle``) <- ``pose`` (the pose stage), ``datasets`` (converters, processed layout), ``metrics``
(metrics, evaluation runner), ``runtime`` (training runtime). ``errors.DataError`` is shared by all.
"""
from data_tools.errors import DataError

__all__ = ["DataError"]
