"""One exception type for bad input: the CLI turns it into a one-line message and exit 2;
and turning Ray's wrapped worker / trial failures back into the user's own error."""
from __future__ import annotations

import re


class PtftError(Exception):
    """A problem with the user's input (config, data, checkpoint, resources).

    The message names the file, key or value at fault; the CLI prints it on one line
    and exits with code 2 (the traceback only with --debug).
    """

    exit_code = 2


class DivergenceError(PtftError):
    """The loss became NaN or infinite."""


def find_user_error(e: BaseException | None, depth: int = 0) -> PtftError | None:
    """Search a Ray exception (worker failures, RayTaskError causes) for a PtftError."""
    if e is None or depth > 6:
        return None
    for inner in (getattr(e, "worker_failures", {}) or {}).values():
        found = find_user_error(inner, depth + 1)
        if found:
            return found
    for attr in ("cause", "__cause__", "__context__"):
        found = find_user_error(getattr(e, attr, None), depth + 1)
        if found:
            return found
    if isinstance(e, PtftError):  # Ray's RayTaskError(PtftError) carries a traceback text
        last = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        return type(e)(re.sub(r"^[\w.]+(Error|Exception): ", "", last))
    return None


def raise_user_error(e: BaseException):
    found = find_user_error(e)
    if found:
        raise found from e
    raise e


def error_line(e: BaseException) -> str:
    """One line for a failure: the user's own error if Ray wrapped one, else its last line."""
    user = find_user_error(e)
    if user:
        return str(user)
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return (lines[-1] if lines else type(e).__name__)[:300]
