"""What a failed send to SQS says: AWS's error answers and botocore's exceptions, mapped to
readable `error_detail`s, with the credentials kept out of them.

A detail names the AWS error code, and `status_code` is the HTTP status of SQS's error answer; it
is None when there was no answer (the endpoint unreachable, a timeout) and for an entry that
failed inside an accepted batch (SQS gives such entries no status of their own). Secrets never
appear in a detail or a log line: the secret key is scrubbed and the access key id shown masked
(`scrub_credentials`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import (  # type: ignore[import-untyped]
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from deliverers.attempt import one_line, scrub
from deliverers.config import mask
from deliverers.sqs.client import ClientKey
from hub.errors import TargetRefused

_NONEXISTENT_QUEUE = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
_BAD_KEY_ID = {"InvalidClientTokenId", "UnrecognizedClientException", "InvalidAccessKeyId"}
_BAD_SIGNATURE = {"SignatureDoesNotMatch", "IncompleteSignature"}
_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}
_ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "KMS.AccessDeniedException"}
_THROTTLED = {
    "Throttling",
    "ThrottlingException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "KMS.ThrottlingException",
}
#: Batch errors that every entry would meet alone as well: not worth re-sending one by one.
_WHOLE_QUEUE = _NONEXISTENT_QUEUE | _BAD_KEY_ID | _BAD_SIGNATURE | _EXPIRED | _ACCESS_DENIED
_WHOLE_QUEUE |= _THROTTLED

_XML_ERROR = re.compile(r"<Code>([^<]+)</Code>\s*<Message>([^<]*)</Message>")
#: Credentials shorter than this are no secret worth the name, and replacing them would garble
#: the text.
_SCRUB_MIN = 8


@dataclass(frozen=True, slots=True)
class Failed:
    """A message SQS did not take, and why."""

    detail: str
    status_code: int | None = None
    whole_queue: bool = True
    """Whether every message to this queue would fail the same way (no point re-sending alone)."""


def client_error(error: Any, queue_url: str, key: ClientKey) -> Failed:
    """The failure of a request SQS answered with an error (botocore's `ClientError`)."""
    response: dict[str, Any] = getattr(error, "response", {}) or {}
    info: dict[str, Any] = response.get("Error", {}) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    # Over the JSON protocol `Code` is the query-compatible code
    # (`AWS.SimpleQueueService.NonExistentQueue`) and `QueryErrorCode` the error's shape name
    # (`QueueDoesNotExist`); either may be what a caller knows.
    code = str(info.get("Code") or info.get("QueryErrorCode") or "")
    codes = {code, str(info.get("QueryErrorCode") or "")}
    message = str(info.get("Message") or "")
    # Some SQS-compatible servers (moto) answer JSON requests with the query protocol's XML
    # error document, which botocore then reports as code "403" with the XML as the message.
    if found := _XML_ERROR.search(message):
        code, message = found.group(1), found.group(2)
        codes = {code}
    return _failed_for_codes(code, codes, one_line(message), status, queue_url, key)


def _failed_for_codes(
    code: str, codes: set[str], message: str, status: int | None, queue_url: str, key: ClientKey
) -> Failed:
    key_id = mask(key.access_key_id)
    if codes & _NONEXISTENT_QUEUE:
        detail = f"The SQS queue {queue_url} does not exist in region {key.region} ({code})"
    elif codes & _BAD_KEY_ID:
        detail = (
            f"AWS does not recognise the access key id {key_id}: check aws_access_key_id ({code})"
        )
    elif codes & _BAD_SIGNATURE:
        detail = (
            f"AWS rejected the request signature: aws_secret_access_key does not match the "
            f"access key id {key_id} ({code})"
        )
    elif codes & _EXPIRED:
        detail = f"AWS rejected the credentials of access key id {key_id} as expired ({code})"
    elif codes & _ACCESS_DENIED:
        detail = (
            f"Access denied: access key id {key_id} may not send messages to {queue_url} ({code})"
        )
        if message:
            detail += f": {message}"
    elif codes & _THROTTLED:
        detail = f"SQS throttled the request to {queue_url} ({code})"
    elif code.isdigit() or not code:
        # No AWS error code: whatever answered is probably not SQS (a proxy, a wrong URL).
        detail = f"The endpoint {key.endpoint} answered HTTP {status or code or '?'}"
        detail += f": {message}" if message else ", not as SQS does"
    else:
        verb = "failed to take" if status is not None and status >= 500 else "refused"
        detail = f"SQS {verb} the message ({code})" + (f": {message}" if message else "")
    whole = bool(codes & _WHOLE_QUEUE) or status is None or status >= 500
    return Failed(scrub_key(detail, key), status, whole_queue=whole)


def botocore_error(error: BaseException, endpoint: str, timeout: float) -> Failed:
    """The failure of a request that got no answer from SQS (botocore's other errors)."""
    if isinstance(error, ConnectTimeoutError):
        return Failed(f"Timed out after {timeout} s connecting to the SQS endpoint {endpoint}")
    if isinstance(error, ReadTimeoutError):
        return Failed(f"Timed out after {timeout} s waiting for the SQS endpoint {endpoint}")
    if isinstance(error, EndpointConnectionError):
        cause = getattr(error, "kwargs", {}).get("error")
        refused = getattr(cause, "os_error", None)
        if isinstance(refused, TargetRefused):
            return Failed(refused.reason)
        if isinstance(getattr(cause, "os_error", None), ConnectionRefusedError):
            return Failed(f"Connection refused by the SQS endpoint {endpoint}")
        why = f": {one_line(str(cause))}" if cause is not None else ""
        return Failed(f"Could not connect to the SQS endpoint {endpoint}{why}")
    return Failed(f"Could not send the message to SQS at {endpoint}: {one_line(str(error))}")


def entry_error(entry: dict[str, Any], key: ClientKey) -> Failed:
    """The failure of one entry SQS lists as `Failed` in its answer to a batch."""
    code = str(entry.get("Code") or "")
    message = one_line(str(entry.get("Message") or ""))
    detail = f"SQS refused the message ({code})" + (f": {message}" if message else "")
    if not entry.get("SenderFault", True):
        detail += "; an error on AWS's side"
    return Failed(scrub_key(detail, key))


def scrub_key(text: str, key: ClientKey) -> str:
    """`text` without the secret key, and with the access key id masked."""
    return scrub_credentials(text, key.access_key_id, key.secret_access_key)


def scrub_credentials(text: str, access_key_id: str, secret_access_key: str) -> str:
    """`text` without `secret_access_key`, and with `access_key_id` masked (EP's masking)."""
    text = scrub(text, secret_access_key, min_length=_SCRUB_MIN)
    return scrub(text, access_key_id, min_length=_SCRUB_MIN, shown_as=mask)


__all__ = [
    "Failed",
    "botocore_error",
    "client_error",
    "entry_error",
    "scrub_credentials",
    "scrub_key",
]
