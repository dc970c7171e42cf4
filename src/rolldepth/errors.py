"""The one exception type for user mistakes.

Anything raised as ``UserError`` is a problem with the user's input or options (a missing video, a wrong
checkpoint folder, an impossible setting). The CLI prints its message as one line and exits non-zero;
every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """A problem with the user's input or options, reported as one clear line."""


def read_user_file(path: Path, what: str) -> str:
    """The text of a file the user named (``what``: e.g. "anchor file"), a missing or unreadable one a UserError."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the {what} {path}: {exc}") from None
