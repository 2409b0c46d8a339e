"""The seam between the sink and a server: what every transport offers, and the shared bandwidth cap.

The protocols (`pipeline.ftp`, later others) implement `Transport`; the sink knows only this
package, and `pipeline.sink.transports.make_transport` is the one place that picks a protocol.
"""

from __future__ import annotations

from pipeline.transport.base import Delivered, Delivery, DeliveryProgress, Transport

__all__ = ["Delivered", "Delivery", "DeliveryProgress", "Transport"]
