"""Run an Azure Data Factory pipeline, wait for it, and read its output from Blob storage.

Run with a service principal in the environment:
    AZURE_SUBSCRIPTION_ID=... AZURE_TENANT_ID=... AZURE_CLIENT_ID=... AZURE_CLIENT_SECRET=... \\
    python examples/adf_example.py RESOURCE_GROUP FACTORY PIPELINE [param=value ...]
"""

from __future__ import annotations

import os
import sys

from sygnify import CloudDataConnector
from sygnify.orchestrators.azure_data_factory.connector import (
    PipelineRunFailedError,
    open_output,
    storage_urls,
)


def main(resource_group: str, factory: str, pipeline: str, parameters: dict[str, str]) -> None:
    with CloudDataConnector() as connector:
        adf = connector.connect(
            "azure_data_factory",
            name="adf",
            subscription_id=os.environ["AZURE_SUBSCRIPTION_ID"],
            resource_group=resource_group,
            factory_name=factory,
            auth="service_principal_secret",
            tenant_id=os.environ["AZURE_TENANT_ID"],
            client_id=os.environ["AZURE_CLIENT_ID"],
            client_secret=os.environ["AZURE_CLIENT_SECRET"],
        )
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


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    extra = dict(argument.split("=", 1) for argument in sys.argv[4:])
    main(sys.argv[1], sys.argv[2], sys.argv[3], extra)
