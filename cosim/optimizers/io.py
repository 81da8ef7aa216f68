"""Reading a round snapshot a user gives (`cosim optimize --instance`), with one-line errors."""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import UserError, field_error
from .api import FORMAT, RoundSnapshot, snapshot_from_dict


def read_instance(path: str, where: str = "cosim optimize") -> RoundSnapshot:
    """The snapshot in `path`; UserError (one line) when the file is missing, not JSON or not a snapshot."""
    p = Path(path)
    if not p.is_file():
        raise UserError(field_error(where, "--instance", path, "an existing round snapshot JSON file"))
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not JSON ({exc}): expected a round snapshot ({FORMAT})") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a JSON {type(data).__name__}: expected a round snapshot object ({FORMAT})")
    try:
        return snapshot_from_dict(data)
    except KeyError as exc:
        raise UserError(f"{path}: missing field {exc}: expected a round snapshot ({FORMAT})") from None
    except (TypeError, ValueError) as exc:
        raise UserError(f"{path}: {exc}: expected a round snapshot ({FORMAT})") from None
