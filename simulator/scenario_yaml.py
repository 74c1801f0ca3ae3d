"""YAML read as nodes that remember where they are: every value of a scenario file carries
its line, so a schema error names the file, the line and the key (``ScenarioError``).

PyYAML's composer gives the node tree with its marks and with each plain scalar's implicit
tag resolved (int, bool, null, str); the scenario loader reads that tree through ``Node``
instead of the plain Python values ``safe_load`` would give, which have lost their lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import yaml

from registry.yamlfile import describe

_INT = "tag:yaml.org,2002:int"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_FLOAT = "tag:yaml.org,2002:float"


class ScenarioError(ValueError):
    """A scenario file that cannot be used: ``FILE:LINE: KEY: problem``; KEY is the path
    to the value, list items counted from 1 (``steps[3].expect.status``)."""

    def __init__(self, path: Path, line: int, key: str, problem: str) -> None:
        super().__init__(f"{path}:{line}: {key}: {problem}")
        self.path = path
        self.line = line
        self.key = key
        self.problem = problem


def compose_file(path: Path) -> Node:
    """The document in ``path`` as a Node; a syntax error is a ScenarioError at its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as error:
        raise ScenarioError(path, 0, "file", f"cannot read: {error}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as error:
        line = error.problem_mark.line + 1 if error.problem_mark is not None else 0
        raise ScenarioError(path, line, "yaml", describe(error)) from None
    except yaml.YAMLError as error:
        raise ScenarioError(path, 0, "yaml", describe(error)) from None
    if root is None:
        raise ScenarioError(path, 1, "file", "empty: a scenario is a mapping with scenario, start and steps")
    return Node(root, path, "file")


class Node:
    """One YAML node, the file it came from and the key path that leads to it."""

    __slots__ = ("key", "node", "path")

    def __init__(self, node: yaml.Node, path: Path, key: str) -> None:
        self.node = node
        self.path = path
        self.key = key

    @property
    def line(self) -> int:
        return int(self.node.start_mark.line) + 1

    def fail(self, problem: str) -> NoReturn:
        raise ScenarioError(self.path, self.line, self.key, problem)

    def _child(self, node: yaml.Node, key: str) -> Node:
        return Node(node, self.path, key)

    # shapes

    def is_mapping(self) -> bool:
        return isinstance(self.node, yaml.MappingNode)

    def is_sequence(self) -> bool:
        return isinstance(self.node, yaml.SequenceNode)

    def is_scalar(self) -> bool:
        return isinstance(self.node, yaml.ScalarNode)

    def mapping(self, allowed: set[str] | None = None, required: tuple[str, ...] = ()) -> dict[str, Node]:
        """The mapping's values by key; an unknown key (when ``allowed``), a repeated key or a
        missing required one is an error at its line."""
        if not self.is_mapping():
            self.fail(f"expected a mapping, found {self._shape()}")
        found: dict[str, Node] = {}
        for key_node, value_node in self.node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                Node(key_node, self.path, self.key).fail("a key must be a plain word")
            name = str(key_node.value)
            path = name if self.key == "file" else f"{self.key}.{name}"
            if name in found:
                Node(key_node, self.path, path).fail("given twice")
            if allowed is not None and name not in allowed:
                Node(key_node, self.path, path).fail(f"unknown key; expected one of {', '.join(sorted(allowed))}")
            found[name] = self._child(value_node, path)
        for name in required:
            if name not in found:
                self.fail(f"missing key {name!r}")
        return found

    def sequence(self) -> list[Node]:
        if not self.is_sequence():
            self.fail(f"expected a list, found {self._shape()}")
        return [self._child(item, f"{self.key}[{number}]") for number, item in enumerate(self.node.value, start=1)]

    def items(self) -> Iterator[tuple[str, Node]]:
        yield from self.mapping().items()

    # scalars

    def text(self) -> str:
        if not self.is_scalar():
            self.fail(f"expected a value, found {self._shape()}")
        if self.node.tag == _NULL:
            self.fail("expected a value, found nothing")
        return str(self.node.value)

    def integer(self, low: int | None = None, high: int | None = None) -> int:
        text = self.text()
        try:
            value = int(text, 0) if self.node.tag == _INT else int(text)
        except ValueError:
            self.fail(f"{text!r} is not a whole number")
        if (low is not None and value < low) or (high is not None and value > high):
            self.fail(f"{value} is out of range ({low}..{high})")
        return value

    def digits(self, what: str) -> str:
        """A number written as digits (an IMSI, an MSISDN): quoted or not, kept as text."""
        text = self.text().strip()
        if not text.isdigit():
            self.fail(f"{text!r} is not a {what} (digits only)")
        return text

    def plain(self) -> Any:
        """The value as plain Python (str, int, float, bool, None, list, dict)."""
        if self.is_mapping():
            return {name: value.plain() for name, value in self.mapping().items()}
        if self.is_sequence():
            return [item.plain() for item in self.sequence()]
        return scalar_value(self.node)

    def _shape(self) -> str:
        if self.is_mapping():
            return "a mapping"
        if self.is_sequence():
            return "a list"
        return f"the value {self.node.value!r}"


def scalar_value(node: yaml.Node) -> Any:
    """A scalar node as ``safe_load`` would give it (int, float, bool, None, str)."""
    if node.tag == _NULL:
        return None
    if node.tag == _BOOL:
        return str(node.value).lower() in ("true", "yes", "on")
    if node.tag == _INT:
        try:
            return int(str(node.value).replace("_", ""), 0)
        except ValueError:
            return str(node.value)
    if node.tag == _FLOAT:
        try:
            return float(node.value)
        except ValueError:
            return str(node.value)
    return str(node.value)

