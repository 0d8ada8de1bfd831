"""Exceptions that the CLI turns into exit codes and one clear message."""


class StylesurvError(Exception):
    """Bad input or state the user can fix; the CLI prints it and exits with code 1.

    The message names the file, row or patient and says what to do.
    """


class InputError(StylesurvError):
    """An input file or table is missing, malformed or inconsistent."""


class CheckpointError(StylesurvError):
    """A checkpoint cannot be read safely or is not the kind of network expected."""
