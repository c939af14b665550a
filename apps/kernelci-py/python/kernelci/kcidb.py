"""KCIDB I/O documents: validate, load, upgrade to v5.3, submit to a receiver.

A document is ``bytes`` (as read from a file), ``str`` or any JSON-serializable object
(a ``dict``), which is checked as the text ``json.dumps`` makes of it. The verdicts are those
of the kernelci-kcidb crate: the ones of the reference validator (the ``kcidb-io`` package)
except for the documented stricter checks (each problem says ``stricter_than_kcidb_io``).
Valid versions: v3.0, v4.0-v4.5, v5.0-v5.3.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

from . import _native
from .errors import InvalidSubmission, SubmitError

Document = Union[bytes, bytearray, str, Dict[str, Any]]

#: The latest I/O schema version, which ``load`` and ``upgrade`` return.
SCHEMA_VERSION: str = _native.KCIDB_SCHEMA_VERSION

__all__ = [
    "SCHEMA_VERSION",
    "InvalidSubmission",
    "SubmitError",
    "validate",
    "is_valid",
    "load",
    "upgrade",
    "submit",
    "status",
]


def validate(doc: Document) -> List[Dict[str, Any]]:
    """Every problem of the document (parse, schema, upgrade stages); ``[]`` when valid.

    Each problem: ``{"pointer": "/builds/0/start_time", "message": ..., "stage": "schema",
    "stricter_than_kcidb_io": False}``.
    """
    return _native.kcidb_validate(doc)


def is_valid(doc: Document) -> bool:
    """``True`` when the document is valid (the verdict of ``validate`` without the list)."""
    return _native.kcidb_is_valid(doc)


def load(doc: Document) -> Dict[str, Any]:
    """The document validated, upgraded to v5.3 and read into KCIDB's typed objects, as a
    dict (exactly KCIDB's JSON). Raises ``InvalidSubmission``."""
    return _native.kcidb_load(doc)


def upgrade(doc: Document) -> Dict[str, Any]:
    """The document validated and upgraded to v5.3 (as ``kcidb_io.schema.LATEST.upgrade``
    does), as a dict; a v5.3 document comes back unchanged. Raises ``InvalidSubmission``."""
    return _native.kcidb_upgrade(doc)


def submit(
    url: str,
    token: str,
    doc: Document,
    *,
    wait: Optional[float] = None,
    tries: int = 3,
    retry_delay: float = 1.0,
) -> Dict[str, Any]:
    """Posts the document to a KCIDB receiver's ``/submit`` URL with the JWT ``token``; returns
    the receipt (``{"id", "status": "ok", "message", ...}``).

    With ``wait`` (seconds), polls ``/status`` until the submission is ``processed`` or
    ``failed`` and returns that status instead. Connection errors and 5xx replies are retried
    ``tries`` times in all, the delay doubling from ``retry_delay``. Blocking; the GIL is
    released meanwhile. Raises ``SubmitError`` (``.status``: 400 with every problem in
    ``.reply``, 401, 403, ...; ``None`` when unreachable).
    """
    return _native.kcidb_submit(
        url, token, doc, wait=wait, tries=tries, retry_delay=retry_delay
    )


def status(
    url: str, token: str, id: str, *, tries: int = 3, retry_delay: float = 1.0
) -> Dict[str, Any]:
    """The state of a submission (``/status?id=`` beside the ``/submit`` ``url``)."""
    return _native.kcidb_status(url, token, id, tries=tries, retry_delay=retry_delay)
