"""The domain's refusal, in a leaf module: every rule module raises it, and the API, the
pages and the CLI translate it by its stable ``code`` (STYLE.md 9 and 13)."""

from __future__ import annotations


class DomainError(ValueError):
    """A refused command. ``code`` is stable: the API and the CLI speak it."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
