"""The error a dataset reader raises for bad or missing input."""

from unihead.errors import InputError


class DatasetError(InputError):
    """Bad or missing dataset input; the message names the file and the problem."""


class DownloadError(InputError):
    """A download that failed or did not match its checksum; the message names the URL and what to check."""
