"""The one exception type the command line turns into a one-line message and a non-zero exit.
"""

from __future__ import annotations

import os


class Gan3dError(Exception):
    """A user-facing error: bad input, a file that cannot be read, a mismatched checkpoint.

    The message is one line that names the file (when there is one) and what is wrong with it.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        text = message if self.path is None else f"{self.path}: {message}"
        super().__init__(" ".join(text.split()))
