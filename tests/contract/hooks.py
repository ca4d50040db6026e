"""Schemathesis hooks for the License API contract test (scripts/contract-test.sh, docs/testing.md).

Signs every request as SPEC §1.2 requires, so that generated requests get past authentication and
reach the handlers: a fresh `Date` (RFC 7231 IMF-fixdate) and
`Authorization: algorithm="hmac-sha256",headers="date",signature="<base64>",apikey="<api key>"`, the
signature an HMAC-SHA256 with the shared key over `licenseSpring\\ndate: <Date>` (the same message as
`shared/src/client.rs`). The key pair comes from the environment: CONTRACT_API_KEY, CONTRACT_SHARED_KEY.

Half of the generated license requests are also pointed at the demo catalog's product and license
(CONTRACT_PRODUCT, CONTRACT_LICENSE_KEY) on one device, and half of the user listings at its
user-based product's user and customer, so that success answers are checked against their schemas
too, not only the errors of unknown products.
"""

import base64
import hashlib
import hmac
import os
import random
from email.utils import formatdate

import schemathesis

API_KEY = os.environ["CONTRACT_API_KEY"]
SHARED_KEY = os.environ["CONTRACT_SHARED_KEY"]
PRODUCT = os.environ.get("CONTRACT_PRODUCT", "demo")
LICENSE_KEY = os.environ.get("CONTRACT_LICENSE_KEY", "DEMO-0000-0000-0001")
# One device for the demo license: once activated, the requests that need an active device (checks,
# variables, consumptions, borrowing) reach their success answers instead of `license_not_active`.
HARDWARE_ID = "contract-test-device"
# Deactivations and releases name another device, so that they do not take that one out from under the
# operations tested after them.
SPARE_HARDWARE_ID = "contract-test-spare-device"


def authorization(date: str) -> str:
    message = f"licenseSpring\ndate: {date}".encode()
    digest = hmac.new(SHARED_KEY.encode(), message, hashlib.sha256).digest()
    signature = base64.b64encode(digest).decode()
    return f'algorithm="hmac-sha256",headers="date",signature="{signature}",apikey="{API_KEY}"'


@schemathesis.auth(refresh_interval=None)
class Hmac:
    """A new Date and signature for every request (the server allows 15 minutes of skew)."""

    def get(self, case, context):
        return formatdate(usegmt=True)

    def set(self, case, data, context):
        case.headers = case.headers or {}
        case.headers["Date"] = data
        case.headers["Authorization"] = authorization(data)


def point_at_demo(fields, hardware_id):
    """Names the demo product, and its license by key alone on one device, in half of the requests
    that name a product: generated requests mostly name a license two ways or none (validation
    errors)."""
    if isinstance(fields, dict) and "product" in fields and random.random() < 0.5:
        fields["product"] = PRODUCT
        if "hardware_id" in fields:
            fields["hardware_id"] = hardware_id
            fields["license_key"] = LICENSE_KEY
            for other in ("username", "password", "id_token", "code", "customer_account_code", "bundle_code",
                          "license_id"):
                fields.pop(other, None)
    return fields


# The demo catalog's user-based product: its users' listings answer with their own schemas.
USER_BASED = {
    "/api/v4/user_licenses": {"product": "demo-team", "username": "ann@example.com", "password": "demo-password"},
    "/api/v4/customer_license_users": {"product": "demo-team", "customer": "team-buyer@example.com"},
}


def point_at_demo_team(fields, path):
    """Names a demo-team user (or customer) in half of the requests to the user listings."""
    if path in USER_BASED and isinstance(fields, dict) and random.random() < 0.5:
        for other in ("license_key", "id_token", "code", "customer_account_code", "redirect_uri"):
            fields.pop(other, None)
        fields.update(USER_BASED[path])
        return fields
    return point_at_demo(fields, SPARE_HARDWARE_ID if "deactivate" in path or path.endswith("/release") else HARDWARE_ID)


@schemathesis.hook
def before_call(context, case, **kwargs):
    # Every phase (the coverage phase's cases are not drawn from strategies, so map_* hooks miss them).
    path = case.operation.path
    case.query = point_at_demo_team(case.query, path)
    case.body = point_at_demo_team(case.body, path)
