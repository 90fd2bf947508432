"""What the per-extra test sessions share: which extra this environment holds alone.

A nox session per extra installs ``sygnify[EXTRA]`` and pytest, nothing else, and sets
``SYGNIFY_EXTRA_ONLY=EXTRA``; its tests then also check that the packages other extras
bring are really absent (the ``test`` extra installs pandas, and hid a missing dependency).
Outside such a session the same tests run in the full test environment, without that check.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TypeVar

import pytest

from tests.emulators import REPO, bqemulator, ensure_venv, fakesnow, mlserver, moto, tansu
from tests.emulators.fakesnow import FakesnowServer, running_fakesnow

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - sygnify's core brings tomli on 3.10
    import tomli as tomllib

ENV = "SYGNIFY_EXTRA_ONLY"
T = TypeVar("T")
#: What the session installs besides ``sygnify[EXTRA]``.
RUNNER = ("pytest", "pytest-timeout")


def only_extra() -> str | None:
    """The extra this environment holds alone (``SYGNIFY_EXTRA_ONLY``), or None."""
    return os.environ.get(ENV) or None


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def extras(pyproject: Path = REPO / "pyproject.toml") -> dict[str, list[str]]:
    """sygnify's extras as written in ``pyproject.toml``: ``{extra: [requirement, ...]}``."""
    with pyproject.open("rb") as handle:
        return dict(tomllib.load(handle)["project"]["optional-dependencies"])


def brought_by(requirements: Iterable[str]) -> set[str]:
    """The distributions installing ``requirements`` puts here, transitively (normalized names).

    Read from the installed distributions' own metadata, so what an extra's packages pull in
    (snowflake-connector-python brings boto3) counts as that extra's.
    """
    from packaging.requirements import Requirement  # pytest's own dependency
    from packaging.utils import canonicalize_name

    found: set[str] = set()
    seen: set[tuple[str, str]] = set()
    todo = [Requirement(requirement) for requirement in requirements]
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        try:
            requires = importlib.metadata.distribution(name).requires or []
        except importlib.metadata.PackageNotFoundError:
            continue
        found.add(name)
        for extra in ("", *requirement.extras):
            if (name, extra) in seen:
                continue
            seen.add((name, extra))
            for line in requires:
                dependency = Requirement(line)
                if dependency.marker is None or dependency.marker.evaluate({"extra": extra}):
                    todo.append(dependency)
    return found


def check_alone(extra: str) -> None:
    """Fail unless this environment holds ``sygnify[extra]`` and no other extra's packages.

    "Other" means what another extra (``test`` included: it brings pandas) names and neither
    ``extra``, sygnify's core nor the test runner brings, transitively.
    """
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    declared = extras()
    own = [requirement for requirement in declared[extra] if not requirement.startswith("sygnify")]
    missing = [
        requirement for requirement in own if not _distribution_installed(Requirement(requirement).name)
    ]
    assert not missing, f"sygnify[{extra}] is installed without {missing}"
    core = importlib.metadata.requires("sygnify") or []
    core = [line for line in core if "extra ==" not in line]
    allowed = brought_by([*core, *own, *RUNNER])
    others = {
        canonicalize_name(Requirement(requirement).name)
        for name, requirements in declared.items()
        if name != extra
        for requirement in requirements
        if not requirement.startswith("sygnify")
    }
    present = sorted(name for name in others - allowed if _distribution_installed(name))
    assert not present, (
        f"the {extra}-only environment holds {present}, which only other extras bring: "
        "a test passing here may rely on them"
    )


def _distribution_installed(name: str) -> bool:
    try:
        importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def _venv_of_the_real_interpreter(
    name: str, requirements: Sequence[str], *, python: str | None = None
) -> Path:
    return ensure_venv(f"{name}-extras", requirements, python=os.path.realpath(python or sys.executable))


@contextmanager
def own_emulator_venvs() -> Iterator[None]:
    """In an extra-only session, build the emulators' venvs from the real interpreter, once.

    The suite's emulator venvs are keyed by the interpreter that made them, so an extra-only
    session, on another interpreter (its own venv's), would rebuild them under the suite's
    feet; inside this block they are ``NAME-extras`` venvs built from the real interpreter
    behind the session's venv instead, shared by every extra-only session.
    """
    if only_extra() is None:
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        for module in (bqemulator, fakesnow, mlserver, moto, tansu):
            patch.setattr(module, "ensure_venv", _venv_of_the_real_interpreter)
        yield


def for_extras(start: Callable[[], AbstractContextManager[T]]) -> Callable[[], AbstractContextManager[T]]:
    """``start`` (an emulator's context manager) run inside :func:`own_emulator_venvs`."""

    @contextmanager
    def started() -> Iterator[T]:
        with own_emulator_venvs(), start() as server:
            yield server

    return started


@contextmanager
def fakesnow_server() -> Iterator[FakesnowServer]:
    """A fakesnow server: the suite's own, or (in an extra-only session) one of its own venv."""
    with own_emulator_venvs(), running_fakesnow() as server:
        yield server
