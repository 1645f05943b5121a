"""One exception tree for genfast.

Every error carries a message saying what went wrong and a hint saying what to do.
The CLI prints ``Error: <message> Hint: <hint>`` and exits 1; the server maps the
classes to HTTP status codes at its edge.
"""

from __future__ import annotations


class GenfastError(Exception):
    """Base class of every error genfast raises on purpose."""

    default_hint = "Run with --debug for the full traceback."

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint or self.default_hint

    def __str__(self) -> str:
        return f"{self.message} Hint: {self.hint}"


class ConfigError(GenfastError):
    """A value given by the user is invalid (bad length, unknown name, unparsable budget)."""

    default_hint = "Check the value against `genfast --help`."

    def __init__(self, message: str, hint: str | None = None, param: str | None = None) -> None:
        super().__init__(message, hint)
        self.param = param
        """The request field at fault, when the value came in an HTTP request."""


class ModelLoadError(GenfastError):
    """A model could not be found or loaded."""

    default_hint = "Pass a local Hugging Face model directory or `demo`."


class DataError(GenfastError):
    """Input text or token data is unusable (too short, mismatched vocabulary)."""


class BackendUnavailableError(GenfastError):
    """An optional backend or device is not installed or not present on this machine."""


class QualityBudgetError(GenfastError):
    """A quality budget string could not be parsed."""

    default_hint = "Use e.g. --max-ppl-increase 2% --min-top1-agreement 0.95."


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so the same clean-up as Ctrl-C runs (exit code 143)."""


class Interrupted(GenfastError):
    """A run stopped by Ctrl-C or SIGTERM; the message says what was kept, the hint how to resume."""

    def __init__(self, message: str, hint: str, terminated: bool = False) -> None:
        super().__init__(message, hint)
        self.exit_code = 143 if terminated else 130
