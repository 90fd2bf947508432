"""Project tasks. ``nox -s tests`` is the full test suite (CI runs exactly that)."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests"]
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


@nox.session
def demo(session: nox.Session) -> None:
    """Run ``sygnify demo`` in a fresh environment."""
    session.install("-e", ".")
    session.run("sygnify", "demo", *session.posargs)
