"""Exceptions raised on bad user input. Each message names the offending field, file or value."""


class CevnsInputError(ValueError):
    """Invalid user input: an unknown preset, a malformed TOML file, an out-of-range parameter."""


class DataFileError(CevnsInputError):
    """A data file (release table, efficiency table) is missing or malformed."""
