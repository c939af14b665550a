"""The exceptions of the ``kernelci`` package (raised by the native code too)."""

from __future__ import annotations

from typing import Any, Dict, List, Optional


class KernelCIError(Exception):
    """Base class of the package's own errors."""


class InvalidSubmission(KernelCIError, ValueError):
    """A KCIDB document was rejected.

    ``problems``: every problem, each a dict with ``pointer`` (JSON pointer, ``""`` for the
    whole document), ``message``, ``stage`` and ``stricter_than_kcidb_io``.
    ``stage``: where it failed: ``decode``, ``json``, ``schema`` or ``upgrade``.
    """

    def __init__(self, message: str, problems: List[Dict[str, Any]], stage: str):
        super().__init__(message)
        self.problems = problems
        self.stage = stage


class SubmitError(KernelCIError):
    """A submission to a KCIDB receiver failed.

    ``status``: the HTTP status of the refusal (4xx) or of the last 5xx reply, ``None``
    when the receiver could not be reached. ``reply``: the receiver's reply (a dict when it
    was JSON, else its text), or ``None``.
    """

    def __init__(self, message: str, status: Optional[int], reply: Any):
        super().__init__(message)
        self.status = status
        self.reply = reply


class InvalidNode(KernelCIError, ValueError):
    """A node body was refused as the API refuses it.

    ``status``: 422 (``errors`` is FastAPI's ``detail`` list: ``type``, ``loc``, ``msg``,
    ``input``) or 400 (the message is the API's ``detail`` text; ``errors`` is empty).
    """

    def __init__(self, message: str, status: int, errors: List[Dict[str, Any]]):
        super().__init__(message)
        self.status = status
        self.errors = errors
