"""The whole API against its own OpenAPI schema (schemathesis): no 5xx, no undocumented status,
content type or body. Bounded: a few generated requests per operation.

Requests go through Django's test client in this process, inside the test's transaction: nothing
is committed, so operations are created and validated but never queued (the queueing waits for a
commit) and nothing on pvesim is destroyed; every operation starts from one synced pvesim cluster.
"""

import json
import time

import pytest
import requests
import schemathesis
from django.conf import settings as django_settings
from django.test import Client
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.configuration import set_hypothesis_home_dir
from schemathesis.core.transport import Response
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.fixtures import pve, sim_cluster  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db

# Hypothesis keeps a cache folder; under var/ rather than .hypothesis/ in the checkout.
set_hypothesis_home_dir(str(django_settings.VAR_DIR / "hypothesis"))

CHECKS = [schemathesis.checks.not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]


@pytest.fixture
def openapi_schema():
    # The project's API package first: DRF's generics loading it halfway through is circular.
    import apps.core.api  # noqa: F401
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.renderers import OpenApiJsonRenderer

    raw = json.loads(OpenApiJsonRenderer().render(SchemaGenerator().get_schema(request=None, public=True)))
    return schemathesis.openapi.from_dict(raw)


@pytest.fixture
def caller(sim_cluster, operator, settings):  # noqa: F811
    # The rate limit is tested on its own; here it would only cut the run short.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK,
                               "DEFAULT_THROTTLE_RATES": {"user": "100000/minute", "anon": "100000/minute"}}
    from apps.permissions.models import ApiToken

    _token, secret = ApiToken.objects.create(operator, name="schemathesis")
    return Client(HTTP_AUTHORIZATION=f"Token {secret}", REMOTE_ADDR="192.0.2.1")


def _first_pk(model, **filters):
    return model.objects.filter(**filters).order_by("pk").values_list("pk", flat=True).first()


def use_real_objects(case, cluster) -> None:
    """Point `{id}` (and `{name}`) at objects that exist, so operations get past their 404 and
    their real answers are checked. Changing or deleting the cluster would spoil the rest of the run:
    those keep their random ids."""
    from apps.core.models import AuditEntry
    from apps.gpus.models import GpuDevice, PciMapping
    from apps.guests.models import BackupJob, Guest, Snapshot
    from apps.nodes.models import Node
    from apps.operations.models import Operation
    from apps.storage.models import Storage, StorageContent

    params = case.path_parameters or {}
    if "id" not in params:
        return
    resource = case.operation.path.split("/")[3]
    if resource == "clusters" and case.method.upper() != "GET":  # its URL and token stay pvesim's
        params["id"] = 2**31 - 1
        return
    snapshot = Snapshot.objects.order_by("pk").first()
    pk = {
        "audit": lambda: _first_pk(AuditEntry), "backup-jobs": lambda: _first_pk(BackupJob),
        "backups": lambda: _first_pk(StorageContent, content="backup"), "clusters": lambda: cluster.pk,
        "gpu-mappings": lambda: _first_pk(PciMapping), "gpus": lambda: _first_pk(GpuDevice),
        "guests": lambda: snapshot.guest_id if snapshot else _first_pk(Guest, template=False),
        "nodes": lambda: _first_pk(Node), "operations": lambda: _first_pk(Operation),
        "snapshots": lambda: _first_pk(Snapshot), "storage-content": lambda: _first_pk(StorageContent),
        "storage": lambda: _first_pk(Storage),
    }.get(resource, lambda: None)()
    if pk is not None:
        params["id"] = str(pk) if resource == "operations" else pk
    if "name" in params and snapshot is not None:
        params["name"] = snapshot.name


def call(client: Client, case) -> Response:
    """Send the case through Django's test client; answer in schemathesis' own Response type."""
    for header in ("Authorization", "Cookie"):  # the test's own token, not a generated one
        (case.headers or {}).pop(header, None)
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    kwargs.pop("timeout", None)
    kwargs.pop("allow_redirects", None)
    kwargs.pop("verify", None)
    prepared = requests.Request(**kwargs).prepare()
    path = prepared.path_url
    extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in prepared.headers.items()
             if name.lower() not in {"content-type", "content-length", "host"}}
    body = prepared.body or b""
    if isinstance(body, str):
        body = body.encode()
    started = time.monotonic()
    answer = client.generic(prepared.method, path, data=body,
                            content_type=prepared.headers.get("Content-Type", "application/octet-stream"), **extra)
    headers = {name.lower(): [value] for name, value in answer.items()}
    content = b"".join(answer.streaming_content) if answer.streaming else answer.content
    return Response(status_code=answer.status_code, headers=headers, content=content, request=prepared,
                    elapsed=time.monotonic() - started, verify=False)


# No shrinking: a failure is reported as found, which keeps the run's length bounded.
EXAMPLES = settings(max_examples=3, deadline=None, derandomize=True, database=None,
                    phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))


def test_api_matches_its_schema(openapi_schema, caller, sim_cluster):  # noqa: F811
    """Every operation in one test (one synced cluster); all failures are listed at the end."""
    failures, tried = [], 0
    for result in openapi_schema.get_all_operations():
        operation = result.ok()

        @EXAMPLES
        @given(case=operation.as_strategy())
        def check(case):
            use_real_objects(case, sim_cluster)
            response = call(caller, case)
            case.validate_response(response, checks=CHECKS)

        tried += 1
        try:
            check()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # schemathesis' FailureGroup is a BaseExceptionGroup
            failures.append(f"{operation.label}: {exc}")
    assert tried > 40
    assert not failures, f"{len(failures)} of {tried} operations:\n\n" + "\n\n".join(failures)
