"""Delivery transports: one module per `integration_type`, behind the `Deliverer` port."""
