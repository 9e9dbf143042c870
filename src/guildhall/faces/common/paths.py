"""Where a browser may be sent back to after a login: a path of the same site, or ``/``."""

from __future__ import annotations

MAX_RETURN_PATH = 500
"""As long as a login state may keep it (``panel_login_states.next_path``)."""


def local_path(path: str | None) -> str:
    """``path`` if it is a path on this site, else ``/``: never another site (``//host``,
    ``/\\host``), never a control character, never longer than a login state keeps."""
    if (
        not path
        or not path.startswith("/")
        or path.startswith("//")
        or "\\" in path
        or any(ord(c) < 32 or c == "\x7f" for c in path)
        or len(path) > MAX_RETURN_PATH
    ):
        return "/"
    return path
