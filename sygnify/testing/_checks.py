"""What every kit uses to state a check: ``expect`` and ``raises``, without needing pytest.

The kits raise :class:`AssertionError` with a message that names the check and what was
seen, so a failure reads the same under pytest, unittest or a plain script.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["checks_of", "expect", "raises", "run_checks"]


def expect(condition: object, message: str) -> None:
    """Fail with ``message`` unless ``condition`` holds (kept under ``python -O``, unlike assert).

    >>> expect(1 + 1 == 2, "arithmetic")
    >>> expect([], "a non-empty list")
    Traceback (most recent call last):
    AssertionError: a non-empty list
    """
    if not condition:
        raise AssertionError(message)


@contextmanager
def raises(
    expected: type[BaseException] | tuple[type[BaseException], ...], what: str, *, match: str | None = None
) -> Iterator[None]:
    """Fail unless the block raises ``expected`` (whose message matches ``match``, if given).

    >>> with raises(KeyError, "a missing key"):
    ...     {}["x"]
    >>> with raises(KeyError, "a missing key"):
    ...     pass
    Traceback (most recent call last):
    AssertionError: a missing key: expected KeyError, nothing was raised
    """
    names = " or ".join(e.__name__ for e in expected) if isinstance(expected, tuple) else expected.__name__
    try:
        yield
    except expected as exc:
        if match is not None and not re.search(match, str(exc)):
            raise AssertionError(
                f"{what}: {type(exc).__name__} was raised, but its message {str(exc)!r} "
                f"does not match {match!r}"
            ) from exc
        return
    except Exception as exc:
        raise AssertionError(f"{what}: expected {names}, got {type(exc).__name__}: {exc}") from exc
    raise AssertionError(f"{what}: expected {names}, nothing was raised")


def checks_of(suite: type) -> list[str]:
    """The ``test_*`` methods of a conformance class, in the order they are defined (bases first).

    >>> class Suite:
    ...     def test_b(self) -> None: ...
    ...     def test_a(self) -> None: ...
    >>> checks_of(Suite)
    ['test_b', 'test_a']
    """
    names: list[str] = []
    for cls in reversed(suite.__mro__):
        names += [name for name in vars(cls) if name.startswith("test_") and name not in names]
    return names


def run_checks(suite: object, *arguments: object) -> list[str]:
    """Call every check of ``suite`` with ``arguments``; the names (without ``test_``) that ran."""
    ran = []
    for name in checks_of(type(suite)):
        getattr(suite, name)(*arguments)
        ran.append(name.removeprefix("test_"))
    return ran
