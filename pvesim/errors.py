"""Errors as Proxmox reports them (pve-semantics §1.2)."""


class ApiError(Exception):
    """An HTTP error answer: status, reason phrase (first line of message), optional field errors."""

    def __init__(self, status: int, message: str, errors: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors

    @property
    def reason(self) -> str:
        first = self.message.rstrip("\n")
        if "\n" in first or "\r" in first:
            return "Bad Request" if self.status == 400 else first.splitlines()[0]
        return first


def fail(message: str, status: int = 500):
    """A handler `die`: 500 with the message as reason."""
    raise ApiError(status, message)


def param_errors(errors: dict):
    raise ApiError(400, "Parameter verification failed.", errors)


def forbidden(path: str, priv: str):
    raise ApiError(403, f"Permission check failed ({path}, {priv})")


class TaskError(Exception):
    """Raised inside a task worker: the task ends with `TASK ERROR: <message>`."""


class TaskCancelled(Exception):
    """Raised inside a task worker when the task was stopped (DELETE /nodes/{node}/tasks/{upid})."""
