"""Request ids on responses and log lines (JSON), and Prometheus metrics at /metrics for
allowed scrapers only."""

from __future__ import annotations

import json
import logging

from django.test import override_settings

from annotation.queue import item_claim_next, judgment_submit
from tests.annotation.api_support import ApiTestCase, import_items


class RequestIdTests(ApiTestCase):
    def test_every_response_carries_a_request_id_and_keeps_a_sane_one_it_was_sent(self):
        made_up = self.client.get("/healthz")["X-Request-ID"]
        self.assertRegex(made_up, r"^[0-9a-f]{32}$")
        self.assertEqual(
            self.client.get("/healthz", HTTP_X_REQUEST_ID="lb-1234")["X-Request-ID"], "lb-1234"
        )
        self.assertNotEqual(
            self.client.get("/healthz", HTTP_X_REQUEST_ID="bad id\n")["X-Request-ID"], "bad id\n"
        )

    def test_a_log_line_written_during_a_request_is_json_with_its_request_id(self):
        from django.conf import settings
        from pythonjsonlogger.json import JsonFormatter

        from annotation.request_id import RequestIdFilter

        lines: list[str] = []
        handler = logging.Handler()
        formatter = JsonFormatter(
            **{k: v for k, v in settings.LOGGING["formatters"]["json"].items() if k != "()"}
        )
        handler.emit = lambda record: lines.append(formatter.format(record))  # type: ignore[method-assign]
        handler.addFilter(RequestIdFilter())
        logging.getLogger("django.request").addHandler(handler)
        try:
            self.client.get(
                "/api/v1/projects/nope/items/",
                HTTP_X_REQUEST_ID="trace-42",
                HTTP_AUTHORIZATION=f"Bearer {self.tokens['read']}",
            )
        finally:
            logging.getLogger("django.request").removeHandler(handler)
        self.assertTrue(lines)
        record = json.loads(lines[-1])
        self.assertEqual(record["request_id"], "trace-42")
        self.assertEqual(record["level"], "WARNING")


class MetricsTests(ApiTestCase):
    def scrape(self, **extra):
        return self.client.get("/metrics", **extra)

    def test_strangers_get_a_404(self):
        with override_settings(METRICS_ALLOWED_IPS=["10.0.0.0/8"], METRICS_TOKEN="s3cret"):
            self.assertEqual(self.scrape().status_code, 404)
            self.assertEqual(self.scrape(HTTP_AUTHORIZATION="Bearer wrong").status_code, 404)
            self.assertEqual(self.scrape(HTTP_AUTHORIZATION="Bearer s3cret").status_code, 200)
            self.assertEqual(self.scrape(REMOTE_ADDR="10.1.2.3").status_code, 200)

    def test_it_reports_queue_depth_claims_and_judgments(self):
        import_items(
            self.project,
            [{"external_id": f"m{n}", "language": "de", "response": "Hallo"} for n in range(3)],
        )
        assignment = item_claim_next(evaluator=self.alice, project=self.project)
        judgment_submit(assignment=assignment, evaluator=self.alice, value={"score": 3})
        body = self.scrape().content.decode()
        slots = self.project.overlap * 3 - 1
        self.assertIn(
            f'parity_queue_depth{{language="de",project="mt-rating"}} {float(slots)}', body
        )
        self.assertIn('parity_queue_oldest_seconds{language="de",project="mt-rating"}', body)
        self.assertIn('parity_claims_total{project="mt-rating"}', body)
        self.assertIn('parity_judgments_total{project="mt-rating"}', body)
        self.assertIn('parity_import_rows_total{kind="items"}', body)
        self.assertIn("parity_lease_expiries_total", body)
