"""POST /Bulk (RFC 7644 §3.7): the request's limits are checked here, before anything is
read into operations; ``provisioning.bulk`` runs it."""
from __future__ import annotations

from flask import Blueprint, Response, current_app, request

from ..provisioning import bulk
from ..scim.errors import ScimError
from .content import body_bytes, json_body, scim_response
from .resources import provisioning

bp = Blueprint("bulk", __name__)


@bp.route("/Bulk", methods=["POST"], strict_slashes=False)
def bulk_request() -> Response:
    service = provisioning()
    settings = current_app.config["SCIM"]
    size = request.content_length
    if size is None:  # a chunked body: its size is known once read
        size = len(body_bytes())
    if size > settings.bulk_max_payload_bytes:
        raise ScimError(413, f"A BulkRequest may be at most {settings.bulk_max_payload_bytes} bytes, "
                             f"not {size} (maxPayloadSize in /ServiceProviderConfig)")
    return scim_response(bulk.run(service, json_body(), settings.bulk_max_operations))
