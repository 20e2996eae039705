"""User-facing errors: each message names the file/field at fault and what was expected.

The CLI prints these as one line without a traceback; anything else is a bug and keeps its traceback.
"""


class FedrecError(Exception):
    """Base class for errors caused by user input (files, names, settings)."""


class DatasetError(FedrecError):
    """A dataset file is missing, malformed or unsafe."""


class ConfigError(FedrecError):
    """An unknown or invalid setting (model, key, value)."""


class BudgetError(FedrecError):
    """A memory budget that no configuration of the method fits."""

    def __init__(self, message: str, minimum_bytes: int):
        super().__init__(message)
        self.minimum_bytes = minimum_bytes
