"""Per-cloud credentials and SDK error maps, shared by every plugin of one cloud.

Each cloud has one module, and each module one credentials model (mixed into the config of
every plugin of that cloud, so an option has one name and one meaning everywhere), one
function that builds the SDK credential or session from it, and one map from the SDK's
exceptions onto :mod:`sygnify.errors`, with a hook for a plugin's own refinements:

=============  ===========================  ==============================  =========================
module         credentials                  builds                          error map
=============  ===========================  ==============================  =========================
:mod:`.aws`    ``AwsCredentials``           ``aws_session``, ``aws_client``  ``translate_aws_error``
:mod:`.azure`  ``AzureCredentials``,        ``azure_token_credential``,     ``translate_azure_error``
               ``AzureStorageCredentials``  ``azure_storage_credential``
:mod:`.gcp`    ``GcpCredentials``           ``gcp_credentials``             ``translate_gcp_error``
=============  ===========================  ==============================  =========================

:mod:`.base` holds what the three share (the deprecated-option renaming, ``Retry-After``).

Every SDK is imported lazily (the extras are optional), so each module imports without
its cloud's SDK. This package is infrastructure: it imports only :mod:`sygnify.errors`,
:mod:`sygnify.config` and :mod:`sygnify.resilience`.
"""
