"""What is wrong with a config, each problem with its file, line and field."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConfigError", "Problem", "Where"]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a config file."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class ConfigError(Exception):
    """The config cannot be used; ``problems`` says why, each with its place."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


# A place in the config: keys and list indexes from the top.
Where = tuple[str | int, ...]
