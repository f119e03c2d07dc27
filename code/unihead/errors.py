"""Base class of the errors that report bad user input (a config, a dataset, a weights file)."""


class InputError(ValueError):
    """Bad input from the user; the message names the file or key and what was expected.

    The command line prints these as one line, without a traceback, and exits with status 2.
    """


class OutputError(InputError):
    """A file or folder that could not be written (a read-only folder, a full disk); the message names the path,
    the cause and what to do. Printed as one line with status 2, like bad input."""


class TrainingDiverged(RuntimeError):
    """A loss term became NaN or infinite; the message names the stage, epoch and term.

    The command line prints it as one line and exits with status 1.
    """
