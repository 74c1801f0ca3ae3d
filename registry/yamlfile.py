"""Read a YAML file (a country profile, the agent's configuration) with errors a person can
act on: PyYAML parses text read beforehand as ``<unicode string>`` and spreads its message
over several lines; here a syntax error is one line with the line and column, for the
caller to prefix with the file's path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


class YamlFileError(ValueError):
    """A YAML syntax error, in one line: ``line L, column C: problem (context at line L, column C)``."""


def read_yaml(path: Path) -> Any:
    """The document in ``path`` (UTF-8). OSError and UnicodeError pass through; a YAML
    error is a YamlFileError."""
    text = path.read_text(encoding="utf-8")
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise YamlFileError(describe(error)) from None


def describe(error: yaml.YAMLError) -> str:
    """One line for a PyYAML error, without the name PyYAML gives the stream."""
    if isinstance(error, yaml.MarkedYAMLError):
        problem = error.problem or error.context or "not valid YAML"
        line = f"{_at(error.problem_mark)}: {problem}" if error.problem_mark else str(problem)
        if error.context and error.problem and error.context_mark is not None:
            line += f" ({error.context} at {_at(error.context_mark)})"
        return line
    if isinstance(error, yaml.reader.ReaderError):
        return f"position {error.position}: {str(error).splitlines()[0]}"
    return " ".join(part.strip() for part in str(error).splitlines() if part.strip())


def _at(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"
