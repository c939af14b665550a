"""Log parsing: upstream logspec 1.0.0 (parser definitions 0.0.1), re-implemented.

``parse`` returns the dict upstream's ``logspec.py -o json`` prints (``full=True``:
``--json-full``), with bit-identical signatures.
"""

from __future__ import annotations

from typing import Any, Dict, List, Union

from . import _native

#: The upstream logspec version these parsers reproduce.
LOGSPEC_VERSION: str = _native.LOGSPEC_VERSION

__all__ = ["LOGSPEC_VERSION", "parse", "parsers"]


def parse(text: Union[str, bytes, bytearray], parser: str, *, full: bool = False) -> Dict[str, Any]:
    """Parses a log with one of upstream's parsers (``kbuild``, ``generic_linux_boot``,
    ``test_baseline``, ``test_kselftest``).

    Bytes are decoded as UTF-8, invalid sequences replaced (upstream raises instead);
    newlines are universal. An unknown parser raises ``ValueError`` with upstream's message;
    the two Chromebook parsers raise ``NotImplementedError``. The GIL is released while
    parsing.
    """
    return _native.logspec_parse(text, parser, full=full)


def parsers() -> List[str]:
    """The names of the implemented parsers."""
    return _native.logspec_parsers()
