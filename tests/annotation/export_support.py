"""What the export tests share: pairwise item and vote lines, a pairwise project with
settled, open, tied and both-bad items and its pull helpers, and loading a file with
Hugging Face datasets (never from the network).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from annotation.models import TaskType
from annotation.tokens import api_token_create
from tests.annotation.api_support import ApiTestCase, import_items, import_judgments
from tests.factories import ProjectFactory

# Hugging Face datasets must never reach the network in the suite.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def load_with_datasets(path: Path, builder: str):
    import datasets

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as cache:
        return datasets.load_dataset(builder, data_files=str(path), cache_dir=cache, split="train")


def pair_line(n: int, language: str = "de") -> dict:
    return {
        "external_id": f"p-{n}",
        "language": language,
        "prompt": f"Frage {n}?",
        "response_a": f"Antwort A{n}",
        "response_b": f"Antwort B{n}",
        "model_a": "alpha",
        "model_b": "beta",
    }


def votes(external_id: str, *choices: str, first: int = 0) -> list[dict]:
    return [
        {
            "item_external_id": external_id,
            "rater": f"r{first + k}",
            "value": {"choice": c, "strength": 2} if c in "ab" else {"choice": c},
        }
        for k, c in enumerate(choices)
    ]


class PairsExportCase(ApiTestCase):
    """A pairwise project with settled, open, tied and both-bad items, and the pull helpers."""

    @classmethod
    def setUpTestData(cls) -> None:
        super().setUpTestData()
        cls.pairs = ProjectFactory(
            slug="chat-pairs", task_type=TaskType.PAIRWISE, languages=["de", "sw"], overlap=3
        )
        cls.pairs.leads.add(cls.lead)
        cls.export_token = api_token_create(project=cls.pairs, scope="export")[1]
        import_items(
            cls.pairs, [pair_line(n) for n in range(6)] + [pair_line(n, "sw") for n in range(6, 8)]
        )
        import_judgments(
            cls.pairs,
            votes("p-0", "a", "a", "a")
            + votes("p-1", "b", "b", "a")
            + votes("p-2", "a", "tie", "tie")
            + votes("p-3", "both_bad", "both_bad", "a")
            + votes("p-4", "a", "a")  # only two of three: not settled yet
            + votes("p-6", "b", "b", "b"),
        )

    def export(self, query: str = "", token: str | None = None):
        response = self.call(
            "get",
            f"/api/v1/projects/chat-pairs/export/preferences/{query}",
            token=token or self.export_token,
        )
        self.assertIn(response.status_code, (200, 204), getattr(response, "content", b"")[:300])
        if response.status_code == 204:
            # An empty pull: no body at all (a 0-byte file would not load), the cursor still set.
            self.assertTrue(response["X-Parity-Cursor"])
            return response, b""
        return response, b"".join(response.streaming_content)

    def lines(self, query: str = "") -> tuple[list[dict], str]:
        response, body = self.export(query)
        return [json.loads(line) for line in body.decode().splitlines()], response[
            "X-Parity-Cursor"
        ]
