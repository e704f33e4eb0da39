"""Domain errors shared by services and handlers; main.py maps each to one HTTP status."""


class NotFoundError(Exception):
    """No such experiment, task or worker (404)."""


class ConflictError(Exception):
    """The request is valid but the current state forbids it (409)."""


class StaleLeaseError(ConflictError):
    """The lease token is not the task's current one: a successor owns the task now (409)."""


class InvalidSpecError(ValueError):
    """An experiment spec the library rejected; the message names the field (422)."""


class ForbiddenError(Exception):
    """The caller's worker credential is not the one this lease or worker id belongs to (403)."""
