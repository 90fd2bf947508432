"""Run an Azure Data Factory pipeline, wait for it, and read its output from Blob storage.

Run with a service principal in the environment:
    AZURE_SUBSCRIPTION_ID=... AZURE_TENANT_ID=... AZURE_CLIENT_ID=... AZURE_CLIENT_SECRET=... \\
    python examples/adf_example.py RESOURCE_GROUP FACTORY PIPELINE [param=value ...]

``AZURE_ARM_ENDPOINT`` points it at another Resource Manager endpoint than the public
cloud's: a sovereign cloud (``https://management.usgovcloudapi.net``) or a test server
(plain ``http://`` only on loopback, e.g. ``http://127.0.0.1:8080``). ``main()`` also takes
``base_url=`` and, for such a test server, ``credential=`` (any azure-core
``TokenCredential``) in place of the service principal.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from sygnify import CloudDataConnector
from sygnify.orchestrators.azure_data_factory.connector import (
    AzureDataFactoryConfig,
    AzureDataFactoryConnector,
    PipelineRunFailedError,
    open_output,
    storage_urls,
)


def open_factory(
    connector: CloudDataConnector,
    resource_group: str,
    factory: str,
    *,
    base_url: str | None = None,
    credential: Any = None,
) -> AzureDataFactoryConnector:
    """The factory's connection: the service principal from the environment, or ``credential``."""
    settings: dict[str, Any] = {
        "subscription_id": os.environ["AZURE_SUBSCRIPTION_ID"],
        "resource_group": resource_group,
        "factory_name": factory,
    }
    if base_url is not None:  # else SYGNIFY_ADF__BASE_URL or sygnify.toml may still set it
        settings["base_url"] = base_url
    if credential is not None:
        # A credential object is not configuration: build the connection around it directly.
        return AzureDataFactoryConnector(
            AzureDataFactoryConfig(**settings), name="adf", credential=credential
        )
    adf = connector.connect(
        "azure_data_factory",
        name="adf",
        **settings,
        auth="service_principal_secret",
        tenant_id=os.environ["AZURE_TENANT_ID"],
        client_id=os.environ["AZURE_CLIENT_ID"],
        client_secret=os.environ["AZURE_CLIENT_SECRET"],
    )
    assert isinstance(adf, AzureDataFactoryConnector)
    return adf


def main(
    resource_group: str,
    factory: str,
    pipeline: str,
    parameters: dict[str, str],
    *,
    base_url: str | None = None,
    credential: Any = None,
) -> None:
    with CloudDataConnector() as connector:
        adf = open_factory(connector, resource_group, factory, base_url=base_url, credential=credential)
        try:
            print("pipelines:", adf.list())
            run_id = adf.run_pipeline(pipeline, parameters)
            print("started run", run_id)
            try:
                run = adf.wait(run_id, timeout=3600)
            except PipelineRunFailedError as failed:
                print("run failed:", failed.run.message, "- rerunning from the failed activity")
                run = adf.wait(adf.rerun(run_id))
            print("finished:", run.status, f"in {run.duration_ms} ms")
            for activity in adf.activity_runs(run.run_id):
                print(f"  {activity.name}: {activity.status}")
            locations = storage_urls(adf.outputs(run.run_id))
            if locations:
                first = locations[0]
                blob = connector.connect("azure_blob", account_name=first.account)
                print(open_output(first, blob).head(5).collect())
        finally:
            adf.close()


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    extra = dict(argument.split("=", 1) for argument in sys.argv[4:])
    main(sys.argv[1], sys.argv[2], sys.argv[3], extra, base_url=os.environ.get("AZURE_ARM_ENDPOINT"))
