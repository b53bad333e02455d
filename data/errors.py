"""The one error a data loader raises for bad or missing data."""


class DataError(ValueError):
    """Missing, unreadable or inconsistent data files: the message is one line that names the
    file or folder and says how to fix it (``run.py`` prints it and exits 2)."""


def one_line(error: Exception, limit: int = 160) -> str:
    """The first line of an exception's message (its type when it has none), for one-line errors."""
    text = str(error).strip()
    return text.splitlines()[0][:limit] if text else type(error).__name__
