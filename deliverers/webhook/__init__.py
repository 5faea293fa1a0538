"""The webhook deliverer: POST each job, as EP's webhook body, to the integration's URL.

One shared `aiohttp.ClientSession` (a keep-alive connection pool) is created by `open` and
closed by `aclose`. Each attempt is one POST with a total timeout, redirects not followed, and
the outcome is always a `DeliveryResult`: a 2xx answer is a success, everything else (another
status, a timeout, a refused connection, a DNS or TLS failure) is a failure with a specific,
human-readable `error_detail`.

The package, one room per concept:

* `deliverer`: `WebhookDeliverer`, the session and the SSRF guard on every connection;
* `message`: the body EP posts and the request's headers;
* `signing`: the Standard Webhooks signature of each request;
* `response`: reading the endpoint's answer (a bounded body excerpt, `Retry-After`);
* `errors`: what a failed request's `error_detail` says.
"""

from deliverers.webhook.deliverer import WebhookDeliverer
from deliverers.webhook.errors import NON_2XX_DETAIL
from deliverers.webhook.message import body_document, build_body, build_headers
from deliverers.webhook.response import parse_retry_after
from deliverers.webhook.signing import sign

__all__ = [
    "NON_2XX_DETAIL",
    "WebhookDeliverer",
    "body_document",
    "build_body",
    "build_headers",
    "parse_retry_after",
    "sign",
]
