"""The AWS SQS deliverer: each job goes to the integration's queue as a CloudEvent message.

One code path serves AWS and SQS-compatible servers (moto, ElasticMQ). The package, one room per
concept:

* `deliverer`: `SqsDeliverer`, the SSRF guard and each attempt's result;
* `client`: the aiobotocore clients, one per credential set and endpoint;
* `batching`: concurrent sends to one queue sharing one `SendMessageBatch`;
* `message`: a job as an SQS message (body, attributes, FIFO ids, size);
* `errors`: AWS's and botocore's errors as readable `error_detail`s, credentials scrubbed.
"""

from deliverers.sqs.deliverer import SqsDeliverer
from deliverers.sqs.message import (
    ATTR_ATTEMPT,
    ATTR_EVENT_TYPE,
    ATTR_JOB_ID,
    INCLUDES_ELIDED,
    MAX_MESSAGE_BYTES,
    MessageTooLarge,
    SqsMessage,
    build_message,
    endpoint_of,
    is_fifo,
    message_group_id,
    sqs_size,
)

__all__ = [
    "ATTR_ATTEMPT",
    "ATTR_EVENT_TYPE",
    "ATTR_JOB_ID",
    "INCLUDES_ELIDED",
    "MAX_MESSAGE_BYTES",
    "MessageTooLarge",
    "SqsDeliverer",
    "SqsMessage",
    "build_message",
    "endpoint_of",
    "is_fifo",
    "message_group_id",
    "sqs_size",
]
