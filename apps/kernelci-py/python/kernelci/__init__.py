"""KernelCI in Rust, from Python.

``kernelci.kcidb``: KCIDB I/O documents (validate, load, upgrade to v5.3, submit).
``kernelci.logspec``: log parsing with upstream logspec's results.
``kernelci.model``: Maestro nodes and request bodies checked as the API checks them.

The work is done by the kernelci-rs crates (``kernelci._native``); these modules only
document and re-export it.
"""

from . import errors, kcidb, logspec, model
from ._native import __version__
from .errors import InvalidNode, InvalidSubmission, KernelCIError, SubmitError

__all__ = [
    "__version__",
    "errors",
    "kcidb",
    "logspec",
    "model",
    "KernelCIError",
    "InvalidSubmission",
    "SubmitError",
    "InvalidNode",
]
