"""Project tasks. ``nox`` runs the full test suite: the ``tests`` session, then ``extras``
(each extra alone); CI runs exactly that."""

from __future__ import annotations

import os
import shutil

import nox

nox.options.sessions = ["tests", "extras"]
# pip (not uv): it honours this machine's pip config, which serves the CPU build of torch.
nox.options.default_venv_backend = "venv"
nox.options.error_on_missing_interpreters = True

#: Extras the test suite needs: every backend whose tests run against a local emulator.
TEST_EXTRAS = (
    "test,s3,azure,bigquery,snowflake,postgres,mongodb,adf,dask,ray,sklearn,onnx,torch,serving,sagemaker,vertex,azureml,"
    "kafka,redis,nats,mqtt,monitoring,delta,iceberg"
)


@nox.session
def tests(session: nox.Session) -> None:
    """Lint, type-check and run every test (emulators are started by the tests themselves)."""
    session.install("torch==2.13.0")  # the CPU build; a bare "torch" would pull GBs of CUDA wheels
    session.install("-e", f".[{TEST_EXTRAS}]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    session.run("pytest", *session.posargs)


#: Every extra a user installs on its own (not test, bench or all). Each gets a session that
#: holds only it and pytest and runs tests/extras/test_<extra>_only.py: the tests session
#: installs them all with the test extra (pandas and more), which hid an extra that lacked a
#: dependency of its own (snowflake's reads needed pandas).
EXTRAS = (
    "s3", "azure", "bigquery", "snowflake", "postgres", "mongodb", "adf", "dask", "ray", "sklearn",
    "onnx", "torch", "serving", "sagemaker", "vertex", "azureml", "kafka", "redis", "nats", "mqtt",
    "monitoring", "avro", "delta", "iceberg",
)  # fmt: skip


@nox.session(venv_backend="uv|venv")
@nox.parametrize("extra", EXTRAS)
def extras(session: nox.Session, extra: str) -> None:
    """``sygnify[EXTRA]`` alone: its first real use, and a check that no other extra is there."""
    if extra == "torch":
        # uv reads no pip config (where this machine finds the CPU build): pass its wheel folder.
        find_links = os.environ.get("PIP_FIND_LINKS")
        source = ["--find-links", find_links] if find_links else []
        session.install("torch==2.13.0", *source)
    session.install("-e", f".[{extra}]", "pytest", "pytest-timeout")
    session.run(
        "pytest",
        f"tests/extras/test_{extra}_only.py",
        "-p",
        "no:cacheprovider",
        *session.posargs,
        env={"SYGNIFY_EXTRA_ONLY": extra},
    )


@nox.session
def demo(session: nox.Session) -> None:
    """Run ``sygnify demo`` in a fresh environment."""
    session.install("-e", ".")
    session.run("sygnify", "demo", *session.posargs)


#: The atheris targets of ``tests/fuzz/targets.py``: one per reader of the local connector.
FUZZ_TARGETS = ("csv", "jsonl", "parquet", "ipc")


@nox.session
def fuzz(session: nox.Session) -> None:
    """Coverage-guided fuzzing of the file readers with atheris (not in the default sessions).

    ``nox -s fuzz`` runs every target for 60 s, seeded with the structural generators' files;
    ``nox -s fuzz -- csv jsonl -max_total_time=600`` runs the targets named, with libFuzzer's flags.
    Inputs that crash, hang or raise a raw exception are kept as ``crash-*``/``timeout-*`` files,
    listed at the end (the session then fails).
    """
    session.install("atheris", "-e", ".")
    targets = [arg for arg in session.posargs if arg in FUZZ_TARGETS] or list(FUZZ_TARGETS)
    flags = [arg for arg in session.posargs if arg not in FUZZ_TARGETS]
    for flag in ("-max_total_time=60", "-timeout=20", "-rss_limit_mb=4096"):
        if not any(arg.startswith(flag.split("=")[0] + "=") for arg in flags):
            flags.append(flag)
    tmp = session.create_tmp()
    found = []
    for target in targets:
        artifacts = os.path.join(tmp, f"findings-{target}")
        shutil.rmtree(artifacts, ignore_errors=True)  # this run's findings only; the corpus grows across runs
        corpus = os.path.join(tmp, f"corpus-{target}")
        # Restarted after each finding until the time is spent (tests/fuzz/targets.py: main).
        session.run(
            "python", "-m", "tests.fuzz.targets", target, *flags, f"-artifact_prefix={artifacts}/", corpus
        )
        found += [os.path.join(artifacts, name) for name in sorted(os.listdir(artifacts))]
    if found:
        session.error("findings (rerun one: python -m tests.fuzz.targets TARGET FILE):\n" + "\n".join(found))
