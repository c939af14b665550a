"""Maestro nodes: stored nodes, and request bodies checked as the API checks them.

``Node.from_json(doc)``: a stored node as ``GET /node/{id}`` returns it (all 23 keys);
fields read as attributes (``node.name``, ``node.state``), ``to_dict()``, ``to_json()``.
``Node.create(body, owner)``: the node ``POST /node`` would store for this body, or
``InvalidNode`` with the API's status (422 with FastAPI's error list, 400 with the detail).
``validate_node(body)``: the API's 422 ``detail`` list for a body, ``[]`` when it passes.
"""

from __future__ import annotations

from typing import Any, Dict, List

from . import _native
from .errors import InvalidNode

Node = _native.Node

__all__ = ["Node", "InvalidNode", "validate_node"]


def validate_node(body: Any) -> List[Dict[str, Any]]:
    """The 422 errors the API returns for this node body (``POST``/``PUT /node``): each
    ``{"type", "loc", "msg", "input"}``; ``[]`` when the body has the generic shape (the
    400-level checks, kind and kind-specific ``data``, are ``Node.create``'s)."""
    return _native.model_validate_node(body)
