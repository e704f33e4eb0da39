"""Types shared by the weight-sharing modules."""

from __future__ import annotations

from collections.abc import Callable

Report = Callable[[dict[str, float]], None]
