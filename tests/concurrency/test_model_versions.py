"""Two imports that meet the same unknown model names at once, each in its own thread and
transaction on PostgreSQL: both succeed, and every name is registered exactly once."""

from __future__ import annotations

import threading

import pytest
from django.db import connections, transaction
from django.test import TransactionTestCase

from annotation.demo_data import numbered
from annotation.imports import items_import
from annotation.models import ModelVersion
from tests.factories import ProjectFactory

pytestmark = pytest.mark.postgres


class ModelVersionRaceTests(TransactionTestCase):
    def test_concurrent_imports_register_each_new_model_once(self):
        project = ProjectFactory(slug="race", languages=["de"])
        names = [f"model-{k}" for k in range(20)]
        barrier = threading.Barrier(4)
        errors: list[str] = []

        def run(worker: int) -> None:
            try:
                lines = [
                    {
                        "external_id": f"w{worker}-{k}",
                        "language": "de",
                        "response": "x",
                        "model": name,
                    }
                    for k, name in enumerate(names)
                ]
                barrier.wait(timeout=30)
                with transaction.atomic():
                    items_import(project=project, records=numbered(lines))
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(repr(exc))
            finally:
                connections.close_all()

        threads = [threading.Thread(target=run, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        self.assertEqual(errors, [])
        self.assertEqual(
            sorted(ModelVersion.objects.filter(project=project).values_list("name", flat=True)),
            sorted(names),
        )
