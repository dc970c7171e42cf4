"""The pipeline's progress: a tqdm bar in a terminal, or a function told every step, so that a host application
(ComfyUI, a web page) shows it in its own bar and may stop the run by raising from it."""

from __future__ import annotations

from collections.abc import Callable

from tqdm.auto import tqdm

Report = Callable[[str, int, int], None]  # (what, done, total)


class _Told:
    """A bar that calls ``report(desc, done, total)`` at its start and after every update instead of drawing."""

    def __init__(self, report: Report, total: int, initial: int, desc: str):
        self.report, self.total, self.n, self.desc = report, total, initial, desc
        report(desc, initial, total)

    def update(self, n: int = 1) -> None:
        self.n += n
        self.report(self.desc, self.n, self.total)

    def close(self) -> None:
        pass

    def __enter__(self) -> _Told:
        return self

    def __exit__(self, *exc) -> None:
        pass


def progress_bar(progress: bool | Report, total: int, desc: str, initial: int = 0):
    """A bar over ``total`` steps from ``initial``: tqdm's, shown if ``progress`` is true, or, if it is a function,
    one that tells it ``(desc, done, total)``. Either has ``update(n)`` and ``close()`` and is a context manager."""
    if callable(progress):
        return _Told(progress, total, initial, desc)
    return tqdm(total=total, initial=initial, desc=desc, disable=not progress, leave=False)
