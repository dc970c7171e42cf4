"""The one exception type for user mistakes, and the helpers that put a failure into its one line.

Anything raised as ``UserError`` is a problem with the user's input or options (a missing video, a wrong
checkpoint folder, an impossible setting). The CLI prints its message as one line and exits non-zero;
every other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import socket
from pathlib import Path


class UserError(Exception):
    """A problem with the user's input or options, reported as one clear line."""


def first_line(exc: BaseException) -> str:
    """An exception as one short line, for a UserError message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def connect_error(host: str, port: int, timeout: float = 5.0) -> str | None:
    """Why a TCP connection to ``host:port`` fails within ``timeout`` seconds, or None when it opens: the probe that
    answers in seconds before a library that retries for minutes (the model hub, a Ray head node) is asked."""
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__
    return None


def read_user_file(path: Path, what: str) -> str:
    """The text of a file the user named (``what``: e.g. "anchor file"), a missing or unreadable one a UserError."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UserError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read the {what} {path}: {exc}") from None
