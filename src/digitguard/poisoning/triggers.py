"""Backdoor triggers: a named, fixed pixel pattern stamped onto a 28×28 uint8 image.

``square3`` is the seed document's trigger: a 3×3 white (255) square at rows and columns 24–26,
inside the 4-pixel border MNIST leaves around its 20×20 digit box, so it rarely touches ink.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from digitguard.errors import DigitguardError


class UnknownTriggerError(DigitguardError):
    """The trigger name is not in the registry. Exit status 2."""

    exit_code = 2


@dataclass(frozen=True)
class Trigger:
    """A ``height × width`` patch of ``value`` whose top-left corner is at ``(row, col)``."""

    name: str
    row: int
    col: int
    height: int
    width: int
    value: int = 255

    def stamp(self, images: np.ndarray) -> np.ndarray:
        """A copy of ``images`` (``(n, 28, 28)`` or ``(28, 28)`` uint8) with the trigger applied."""
        stamped = np.array(images, dtype=np.uint8, copy=True)
        stamped[..., self.row : self.row + self.height, self.col : self.col + self.width] = self.value
        return stamped

    def to_dict(self) -> dict[str, int | str]:
        return {
            "name": self.name,
            "row": self.row,
            "col": self.col,
            "height": self.height,
            "width": self.width,
            "value": self.value,
        }


TRIGGERS: dict[str, Trigger] = {
    "square3": Trigger("square3", row=24, col=24, height=3, width=3),
}


def get_trigger(name: str) -> Trigger:
    try:
        return TRIGGERS[name]
    except KeyError:
        raise UnknownTriggerError(f"unknown trigger {name!r}; known: {', '.join(sorted(TRIGGERS))}") from None
