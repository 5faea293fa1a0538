"""The AMQP deliverer: publish each job, as a CloudEvent, to an exchange on an AMQP 0-9-1 broker
(RabbitMQ), through aio-pika.

The package, one room per concept:

* `deliverer`: `AmqpDeliverer`, one publish per attempt, confirmed by the broker;
* `connections`: the shared connections, one per URL (credentials and vhost), each with one
  channel per exchange, re-opened after a broker restart;
* `transport`: the socket to the broker, opened to the SSRF guard's vetted addresses only;
* `message`: the message's properties, headers and CloudEvent body;
* `errors`: library errors as readable `error_detail`s, without the password.
"""

from deliverers.amqp.deliverer import AmqpDeliverer
from deliverers.amqp.message import CONTENT_TYPE, build_message

__all__ = ["CONTENT_TYPE", "AmqpDeliverer", "build_message"]
