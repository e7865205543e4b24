"""medcl.registry.Registry: a name is taken once, unknown names are ConfigErrors naming the others."""
import pytest

from medcl.errors import ConfigError
from medcl.registry import Registry


class Odd(ConfigError):
    pass


def test_add_lookup_and_the_errors():
    reg = Registry("widget", error=Odd)
    a, b = object(), object()
    assert reg.add("a", a) is a and reg.add("a", a) is a        # the same thing again: no change
    reg.add("b", b)
    assert reg.lookup("b") is b and list(reg) == ["a", "b"]
    with pytest.raises(ValueError, match="a widget named 'a' is already registered"):
        reg.add("a", b)
    for bad in ("", " a", None):
        with pytest.raises(ValueError, match="non-empty word"):
            reg.add(bad, a)
    with pytest.raises(Odd, match="unknown widget 'c'") as err:
        reg.lookup("c")
    assert err.value.fix == "use one of a, b"


def test_once_means_once_and_a_copy_is_separate():
    reg = Registry("task", same_again=False)
    thing = object()
    reg.add("t", thing)
    with pytest.raises(ValueError, match="already registered"):
        reg.add("t", thing)
    copy = reg.copy()
    copy.add("u", object())
    assert isinstance(copy, Registry) and "u" not in reg and copy.kind == "task" and not copy.same_again
    with pytest.raises(ValueError, match="already registered"):
        copy.add("t", thing)
