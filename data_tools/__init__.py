"""Shared data layer of the PAM engine: I/O, condition maps, filelists, bundles and the training runtime.

No model code lives here; every stage imports from this package.
"""
from data_tools.errors import DataError

__all__ = ["DataError"]
