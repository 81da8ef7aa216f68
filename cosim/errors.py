"""User-facing errors: one line naming the file, the field, the value and what was expected."""
from __future__ import annotations

import os


class UserError(Exception):
    """An error in what the user gave us; the CLI prints str(err) on one line and exits 2."""


class ScenarioError(UserError):
    """One or more invalid fields in a scenario file."""

    def __init__(self, lines: list[str]):
        self.lines = list(lines)
        super().__init__(self.lines)          # args as given: SimPy re-raises process errors as type(e)(*e.args)

    def __str__(self) -> str:
        return "\n".join(self.lines)


class SettingError(UserError):
    """A setting that validates alone but is impossible in context (found while building the run)."""

    def __init__(self, field: str, value, expected: str):
        self.field, self.value, self.expected = field, value, expected
        super().__init__(field, value, expected)   # args as given: SimPy re-raises as type(e)(*e.args)

    def __str__(self) -> str:
        return f"{self.field} = {self.value!r}: expected {self.expected}"

    def with_source(self, source: str) -> UserError:
        return UserError(field_error(source, self.field, self.value, self.expected))


def field_error(source: str, field: str, value, expected: str) -> str:
    """Format one error line: `<file>: <field> = <value>: expected <what>`."""
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"{source}: {field} = {shown}: expected {expected}"


def writable_dir(path, where: str, flag: str = "--out"):
    """Check, without creating anything, that folder `path` (a pathlib.Path) can be made or written; a
    UserError naming `flag` if a file is in the way or the nearest existing folder is not writable."""
    for existing in (path, *path.absolute().parents):
        if existing.exists():
            problem = (f"{existing} is a file" if not existing.is_dir() else
                       None if os.access(existing, os.W_OK | os.X_OK) else f"{existing} is not writable")
            if problem:
                raise UserError(field_error(where, flag, str(path), f"a folder it can write ({problem})"))
            break
    return path
