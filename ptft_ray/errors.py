"""One exception type for bad input: the CLI turns it into a one-line message and exit 2."""


class PtftError(Exception):
    """A problem with the user's input (config, data, checkpoint, resources).

    The message names the file, key or value at fault; the CLI prints it on one line
    and exits with code 2 (the traceback only with --debug).
    """

    exit_code = 2


class DivergenceError(PtftError):
    """The loss became NaN or infinite."""
