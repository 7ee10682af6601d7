"""``/metrics``: Prometheus text with queue depth, delivery counters and send latency."""

from __future__ import annotations

from notifier.service import Notifier
from tests.asgi import api_client
from tests.conftest import event
from tests.smtpd import SmtpServer


async def test_metrics_report_queue_depth_deliveries_and_latency(
    engine: Notifier, smtp_server: SmtpServer
) -> None:
    engine.handle_event(event("order.placed"))
    engine.handle_event(event("order.delivered"))
    await engine.dispatch_due()
    async with api_client(engine) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'notifier_messages{category="order_updates",status="sent"} 1.0' in text
    assert 'notifier_messages{category="reviews",status="scheduled"} 2.0' in text
    assert 'notifier_deliveries_total{category="order_updates",outcome="sent"} 1.0' in text
    assert 'notifier_send_seconds_count{category="order_updates"} 1.0' in text
