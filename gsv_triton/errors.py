"""Errors that carry a message meant for a person, not a traceback."""

from __future__ import annotations

from collections.abc import Mapping


class GsvError(Exception):
    """Base class of the project's expected errors."""


class UserError(GsvError):
    """A problem with files or options the user gave (the CLI prints it as one line)."""


class InputError(GsvError):
    """A request input breaks a rule; ``field`` names the input. The gateway maps it to a 4xx."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


def renamed(exc: InputError, names: Mapping[str, str]) -> InputError:
    """The same error with its field renamed through ``names`` (fields not named keep theirs): a layer that
    called another under different input names reports the name its own caller used."""
    return InputError(names.get(exc.field, exc.field), exc.message, exc.status)
