"""The one exception type for user mistakes.

Anything raised as ``UserError`` is a problem with the user's input or options (a missing video, a wrong
checkpoint folder, an impossible setting). The CLI prints its message as one line and exits non-zero;
every other exception is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A problem with the user's input or options, reported as one clear line."""
