"""The library's exceptions: each says what is wrong and names the offending field."""


class MorphMLError(ValueError):
    """Base class of every error the library raises for bad input."""


class SpaceError(MorphMLError):
    """A search-space spec is invalid (unknown layer, empty choice, bad size, ...)."""


class ArchitectureError(MorphMLError):
    """An architecture is invalid (cycle, missing input/output, a shape that cannot flow)."""
