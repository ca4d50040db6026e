"""Schemathesis hooks for the Management API contract test (scripts/contract-test.sh, docs/testing.md).

Sends the management key (CONTRACT_MANAGEMENT_TOKEN, created for the demo company before the run) as
`Authorization: Bearer <token>`, and points half of the generated requests that name resources in their
path at real ones, so that success answers are checked against their schemas too, not only the 404s
of random names:

- reads (GET) name the demo catalog's resources (product `demo`, license DEMO-0000-0000-0001, user
  ann@example.com, API key demo-api-key);
- everything that changes or removes a resource (PATCH, DELETE, revoke, disable, reset, deactivate,
  password, assign/unassign) names a throwaway the hook creates through the API just before the call
  (a product, a license of `demo`, a license user, a management key, an API key, an OAuth client), so
  no destructive operation takes the demo's resources out from under the operations tested after it.
  Schemathesis also reuses values it saw in answers (the key listing names the run's own key): a
  change that names one of the demo's resources or the run's own key is always pointed at a throwaway.
"""

import itertools
import json
import os
import random
import urllib.error
import urllib.request

import schemathesis

TOKEN = os.environ["CONTRACT_MANAGEMENT_TOKEN"]
BASE = os.environ["CONTRACT_MANAGEMENT_URL"]  # http://host:port/api/management/v1
PRODUCT = os.environ.get("CONTRACT_PRODUCT", "demo")
LICENSE_KEY = os.environ.get("CONTRACT_LICENSE_KEY", "DEMO-0000-0000-0001")
DEMO = {
    "product": PRODUCT,
    "key": LICENSE_KEY,
    "email": "ann@example.com",
    "api_key": "demo-api-key",
    "hardware_id": "contract-test-device",
}
# What no change may name: the run's own key (CONTRACT_MANAGEMENT_KEY_ID) and the demo's resources.
PROTECTED = set(DEMO.values()) | {os.environ["CONTRACT_MANAGEMENT_KEY_ID"], "demo-team", "demo-suite", "demo-viewer"}
SERIAL = itertools.count(1)


@schemathesis.auth(refresh_interval=None)
class ManagementKey:
    def get(self, case, context):
        return TOKEN

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"


def call(method, path, body=None):
    request = urllib.request.Request(
        BASE + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as e:
        raise RuntimeError(f"creating a throwaway: {method} {path} answered {e.code}: {e.read()!r}") from e


def throwaways(names):
    """Creates what `names` (the path's parameters) need, and answers their values."""
    n = next(SERIAL)
    values = {}
    if "product" in names and "key" not in names:
        values["product"] = call("POST", "/products", {"short_code": f"ct-product-{n}"})["code"]
    if "key" in names:
        values["product"] = PRODUCT
        values["key"] = call("POST", f"/products/{PRODUCT}/licenses", {"license_key": f"CT-{n:08}"})["license_key"]
    if "email" in names:
        values["email"] = call("POST", "/users", {"id": 900000 + n, "email": f"ct-{n}@example.com"})["email"]
    if "id" in names:
        values["id"] = call("POST", "/keys", {"name": f"contract throwaway {n}"})["id"]
    if "api_key" in names:
        values["api_key"] = call("POST", "/api-keys", {"api_key": f"ct-api-key-{n}"})[
            "api_key"
        ]
    if "client_id" in names:
        values["client_id"] = call(
            "POST", "/oauth-clients", {"client_id": f"ct-client-{n}"}
        )["client_id"]
    if "hardware_id" in names:
        values["hardware_id"] = f"ct-device-{n}"
    return values


@schemathesis.hook
def before_call(context, case, **kwargs):
    parameters = case.path_parameters or {}
    if not parameters:
        return
    change = case.method.upper() != "GET"
    names_protected = change and any(str(v) in PROTECTED for v in parameters.values())
    if not names_protected and random.random() < 0.5:
        return
    if change:
        values = throwaways(set(parameters))
    else:
        values = {name: DEMO[name] for name in parameters if name in DEMO}
    # A copy: the case's dictionary may be shared with the cases schemathesis derives from it.
    case.path_parameters = {**parameters, **values}
