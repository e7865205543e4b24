"""Registries: names → the things of one kind medcl can be extended with (pretraining methods,
image encoders, downstream tasks). A thing is added once under its name; looking up a name that
is not there is a ConfigError listing those that are (the command line shows it as a usage error).
"""
from __future__ import annotations

from typing import Generic, TypeVar

from medcl.errors import ConfigError

T = TypeVar("T")


class Registry(dict, Generic[T]):
    """A ``dict`` of name → thing with :meth:`add` and :meth:`lookup`.

    ``kind`` names the things in messages ("method", "arch", "task"); ``error`` is the
    ConfigError type of an unknown name; ``same_again``: adding the very same thing under its name
    again is allowed (a module imported twice) rather than refused."""

    def __init__(self, kind: str, *, error: type[ConfigError] = ConfigError, same_again: bool = True):
        super().__init__()
        self.kind, self.error, self.same_again = kind, error, same_again

    def add(self, name: str, thing: T) -> T:
        """Adds ``thing`` under ``name`` and returns it; a name already taken is a ValueError."""
        if not isinstance(name, str) or not name or name != name.strip():
            raise ValueError(f"{self.kind}: a name is a non-empty word, got {name!r}")
        if name in self and not (self.same_again and self[name] is thing):
            raise ValueError(f"a {self.kind} named {name!r} is already registered")
        self[name] = thing
        return thing

    def copy(self) -> "Registry[T]":
        """A registry of the same kind holding the same things (tests register into a copy)."""
        out = Registry(self.kind, error=self.error, same_again=self.same_again)
        out.update(self)
        return out

    def lookup(self, name: str) -> T:
        """The thing registered as ``name``; ``error`` naming the registered ones when there is none."""
        try:
            return self[name]
        except KeyError:
            raise self.error(f"unknown {self.kind} {name!r}", fix=f"use one of {', '.join(self)}") from None
