"""The one exception type the core raises for problems a user can fix (bad input, bad files)."""

from __future__ import annotations


def printable(text: str) -> str:
    """`text` with every character Python does not call printable escaped (controls, line and
    paragraph separators, bidi overrides, lone surrogates, unassigned code points: `\\n`,
    `\\x1b`, `\\u202e`): safe to print on one terminal line, whatever a file put in it."""
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else ascii(char)[1:-1] for char in text)


class TransInrError(Exception):
    """A user-facing error: the message says what is wrong and what to do, in one line.

    Strings from files (names, ids, paths) end up in messages; whatever they hold, the message
    is one printable line: control characters are escaped here, once for every message."""

    def __init__(self, message: object = "") -> None:
        super().__init__(printable(str(message)))
