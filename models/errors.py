"""The one exception type the core raises for problems a user can fix (bad input, bad files)."""


class TransInrError(Exception):
    """A user-facing error: the message says what is wrong and what to do, in one line."""
