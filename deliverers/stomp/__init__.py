"""The STOMP deliverer: send each job, as a CloudEvent, to a destination on a STOMP 1.2 broker.

Built on stomp.py, which is blocking and reads each connection on a receiver thread of its own.
The event loop never blocks: connecting, sending and closing run in worker threads
(`asyncio.to_thread`), and the receiver thread hands RECEIPT, ERROR and disconnect events back to
the loop with `loop.call_soon_threadsafe`, where they settle asyncio futures.

The package, one room per concept:

* `deliverer`: `StompDeliverer`, one SEND per attempt, confirmed by a RECEIPT;
* `connections`: the shared connections, one per broker set and credentials, with failover;
* `session`: one connection's SENDs awaiting an answer, and which SEND an ERROR is about;
* `transport`: stomp.py over one socket to one vetted address, plain or TLS;
* `message`: the SEND frame's headers and CloudEvent body;
* `errors`: why a connect failed, and what an ERROR frame said, as `error_detail`s.
"""

from deliverers.stomp.deliverer import StompDeliverer
from deliverers.stomp.errors import describe_error
from deliverers.stomp.message import CONTENT_TYPE, build_headers

__all__ = ["CONTENT_TYPE", "StompDeliverer", "build_headers", "describe_error"]
