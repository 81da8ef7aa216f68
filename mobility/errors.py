"""Errors for bad mobility inputs (files, ids). Mid-run failures are `MobilityError` (base.py)."""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from .base import MobilityError

__all__ = ["MobilityError", "MobilityInputError", "MobilityFileNotFoundError", "malformed_xml", "one_line",
           "require_file", "require_xml", "xml_root_tag"]


def one_line(text: object, max_chars: int = 300) -> str:
    """Collapse whitespace and newlines to one line, cut to `max_chars`."""
    s = " ".join(str(text).split())
    return s if len(s) <= max_chars else s[: max_chars - 3] + "..."


class MobilityInputError(ValueError):
    """A mobility input is bad: `path` is the file (or the file holding the bad id), `what` says why.

    The message is one line: "<path>: <what>".
    """

    def __init__(self, path: str | Path, what: str):
        self.path, self.what = str(path), one_line(what)
        super().__init__(self.path, self.what)   # args as given: SimPy re-raises process errors as type(e)(*e.args)

    def __str__(self) -> str:
        return f"{self.path}: {self.what}"


class MobilityFileNotFoundError(MobilityInputError, FileNotFoundError):
    """An input file does not exist (also a FileNotFoundError)."""

    def __init__(self, path: str | Path, what: str = "file not found"):
        MobilityInputError.__init__(self, path, what)


def require_file(path: str | Path, role: str) -> Path:
    """`path` as a Path if it is an existing file, else MobilityFileNotFoundError naming it and its role."""
    p = Path(path)
    if not p.is_file():
        raise MobilityFileNotFoundError(p, f"{role} not found" if not p.exists() else f"{role} is not a file")
    return p


def xml_root_tag(path: str | Path) -> str:
    """Tag of the root element, from the first parse event only (cheap on big files).

    Raises MobilityInputError naming the file if it does not start as XML.
    """
    try:
        for _, elem in ET.iterparse(path, events=("start",)):
            return elem.tag
    except ET.ParseError as e:
        raise MobilityInputError(path, f"malformed XML ({one_line(e)})") from None
    raise MobilityInputError(path, "empty XML document")


def malformed_xml(path: str | Path) -> str | None:
    """The parse error of an XML file on one line, or None if it is well-formed (streams; memory stays small)."""
    try:
        for _, elem in ET.iterparse(path, events=("end",)):
            elem.clear()
    except ET.ParseError as e:
        return one_line(e)
    return None


def require_xml(path: str | Path, role: str, root_tags: tuple[str, ...]) -> Path:
    """`require_file` plus a check that the root element is one of `root_tags`."""
    p = require_file(path, role)
    tag = xml_root_tag(p)
    if tag not in root_tags:
        raise MobilityInputError(p, f"not a {role} (root element <{tag}>, expected <{root_tags[0]}>)")
    return p
