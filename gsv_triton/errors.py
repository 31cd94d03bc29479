"""Errors that carry a message meant for a person, not a traceback."""

from __future__ import annotations

import json
from collections.abc import Mapping

WIRE_KEY = "gsv_input_error"  # the key of an InputError sent through Triton


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

    def to_wire(self) -> str:
        """The error as a Triton error message: a JSON object a caller reads back with :meth:`from_wire`
        (field and status as data, never parsed out of a sentence), still readable by a person."""
        return json.dumps({WIRE_KEY: {"field": self.field, "status": self.status, "message": self.message}},
                          ensure_ascii=False)  # fmt: skip

    @classmethod
    def from_wire(cls, text: str) -> InputError | None:
        """The error a model reported with :meth:`to_wire` (None for any other message). Triton may put
        words before it (BLS, ensembles), so the object is looked for, not expected at the start."""
        start = text.find("{" + json.dumps(WIRE_KEY))
        if start < 0:
            return None
        try:
            body = json.JSONDecoder().raw_decode(text, start)[0][WIRE_KEY]
            return cls(str(body["field"]), str(body["message"]), int(body["status"]))
        except (ValueError, KeyError, TypeError):
            return None


def renamed(exc: InputError, names: Mapping[str, str]) -> InputError:
    """The same error with its field renamed through ``names`` (fields not named keep theirs): a layer that
    called another under different input names reports the name its own caller used."""
    return InputError(names.get(exc.field, exc.field), exc.message, exc.status)
