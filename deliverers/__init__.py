"""Delivery transports: one module or package per `integration_type`, behind the `Deliverer` port.

`base` is the port; `attempt` the kit every deliverer times, words, scrubs and fails an attempt
with; `config` each type's configuration; `registry` maps a type to its deliverer; `memory` is
the fake beside the port. `webhook`, `sqs`, `stomp`, `amqp` and `web_push` are the transports
(`cloudevent` is the document the message-queue ones send).

A new transport is a package shaped like theirs: `deliverer` (the class, built on `attempt`),
its transport (clients, connections, batching), `message` (what it sends) and `errors` (library
errors as readable `error_detail`s), with its configuration model in `config.CONFIG_MODELS` and
its instance registered in `hub.dispatch`.
"""
