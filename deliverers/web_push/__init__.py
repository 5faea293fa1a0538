"""The Web Push deliverer: send each job to a browser's push subscription, encrypted (RFC 8291,
aes128gcm) and signed with the store's VAPID key (RFC 8292), through the push service named by
the subscription's endpoint.

pywebpush's own sender would block the event loop (requests) and go around the SSRF guard, so
the pieces are used directly: `http_ece` encrypts, `py_vapid` signs, and the POST goes through
an aiohttp session whose connector resolves through `hub.ssrf`, like the webhook deliverer's.

The package, one room per concept:

* `deliverer`: `WebPushDeliverer`, one POST per attempt, and what the push service answered;
* `vapid`: the store's key pair (made here), and the `Authorization: vapid t=…, k=…` header;
* `encryption`: the aes128gcm body for one subscription;
* `message`: the EP webhook body trimmed to the push limit, and the request's headers;
* `errors`: what each answer of a push service means, as an `error_detail`.
"""

from deliverers.web_push.deliverer import WebPushDeliverer
from deliverers.web_push.message import MAX_PLAINTEXT, push_document
from deliverers.web_push.vapid import generate_key_pair

__all__ = ["MAX_PLAINTEXT", "WebPushDeliverer", "generate_key_pair", "push_document"]
