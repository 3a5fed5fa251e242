"""The line schemas in the OpenAPI document, and a client generated from the live schema
(openapi-python-client) that downloads a preference pull to a file `datasets` loads."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from annotation.exports.preferences import (
    PAIR_COLUMNS,
    PAIR_SIGNAL_COLUMNS,
    RETRACTION_COLUMNS,
    UNPAIRED_COLUMNS,
    UNPAIRED_SIGNAL_COLUMNS,
)
from annotation.models import TaskType
from annotation.tokens import api_token_create
from tests.annotation.api_support import ApiTestCase, import_items, import_judgments
from tests.factories import ProjectFactory

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PACKAGE = "parity_api_client"


class LineSchemaTests(ApiTestCase):
    def test_the_schema_has_a_component_for_each_export_line_with_every_column(self):
        schema = self.client.get("/api/v1/schema/?format=json").json()
        components = schema["components"]["schemas"]
        expected = {
            "PreferenceLine": PAIR_COLUMNS + ("margin",) + PAIR_SIGNAL_COLUMNS,
            "UnpairedLine": UNPAIRED_COLUMNS + UNPAIRED_SIGNAL_COLUMNS,
            "RetractionLine": RETRACTION_COLUMNS,
        }
        for name, columns in expected.items():
            self.assertEqual(tuple(components[name]["properties"]), columns, name)
        # A conversational line's texts are role/content messages.
        prompt = components["PreferenceLine"]["properties"]["prompt"]
        self.assertEqual([option["type"] for option in prompt["oneOf"]], ["string", "array"])

    def test_the_pulls_document_their_cursor_header_binary_bodies_and_json_errors(self):
        schema = self.client.get("/api/v1/schema/?format=json").json()
        for path in (
            "/api/v1/projects/{slug}/export/preferences/",
            "/api/v1/projects/{slug}/export/preferences/retractions/",
        ):
            responses = schema["paths"][path]["get"]["responses"]
            for code in ("200", "204"):
                self.assertIn("X-Parity-Cursor", responses[code]["headers"], (path, code))
            self.assertEqual(
                responses["200"]["content"]["application/octet-stream"]["schema"],
                {"type": "string", "format": "binary"},
            )
            self.assertNotIn("content", responses["204"])
            self.assertEqual(list(responses["400"]["content"]), ["application/json"])

    def test_accept_octet_stream_gets_the_same_bytes_as_a_download(self):
        pairs = ProjectFactory(
            slug="chat-pairs", task_type=TaskType.PAIRWISE, languages=["de"], overlap=1
        )
        token = api_token_create(project=pairs, scope="export")[1]
        import_items(
            pairs,
            [
                {
                    "external_id": "p-0",
                    "language": "de",
                    "prompt": "Frage?",
                    "response_a": "Ja",
                    "response_b": "Nein",
                }
            ],
        )
        import_judgments(
            pairs, [{"item_external_id": "p-0", "rater": "r0", "value": {"choice": "a"}}]
        )
        url = "/api/v1/projects/chat-pairs/export/preferences/"
        plain = self.call("get", url, token=token)
        download = self.call("get", url, token=token, HTTP_ACCEPT="application/octet-stream")
        self.assertEqual(plain["Content-Type"], "application/x-ndjson")
        self.assertEqual(download["Content-Type"], "application/octet-stream")
        self.assertEqual(b"".join(download.streaming_content), b"".join(plain.streaming_content))
        bad = self.call(
            "get", f"{url}?min_agreement=2", token=token, HTTP_ACCEPT="application/octet-stream"
        )
        self.assertErrors(bad, 400, field="min_agreement")


@pytest.fixture
def generated_client(live_server) -> Iterator[Any]:
    """The client openapi-python-client generates from the live schema, imported."""
    schema = httpx.get(f"{live_server.url}/api/v1/schema/?format=json", timeout=30)
    assert schema.status_code == 200, schema.text[:300]
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "schema.json").write_text(schema.text)
        # No post hooks: formatting the generated code is not what is tested.
        Path(tmp, "config.yaml").write_text("post_hooks: []\n")
        generated = subprocess.run(
            [
                sys.executable,
                "-m",
                "openapi_python_client",
                "generate",
                "--path",
                "schema.json",
                "--meta",
                "none",
                "--config",
                "config.yaml",
                "--output-path",
                PACKAGE,
            ],
            cwd=tmp,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert generated.returncode == 0, generated.stdout + generated.stderr
        # The export endpoints must come out whole (the JSON Lines request bodies of the
        # imports are skipped in favour of their JSON alternative, which is fine).
        assert "export/preferences" not in generated.stdout + generated.stderr, generated.stderr
        sys.path.insert(0, tmp)
        try:
            yield importlib.import_module(PACKAGE)
        finally:
            sys.path.remove(tmp)
            for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
                del sys.modules[name]


@pytest.mark.django_db(transaction=True)
class GeneratedClientTests:
    def test_it_downloads_a_preference_pull_to_a_file_that_datasets_loads(
        self, generated_client, live_server, tmp_path
    ):
        import datasets

        pairs = ProjectFactory(
            slug="chat-pairs", task_type=TaskType.PAIRWISE, languages=["de", "sw"], overlap=1
        )
        token = api_token_create(project=pairs, scope="export")[1]
        import_items(
            pairs,
            [
                {
                    "external_id": f"p-{n}",
                    "language": "de",
                    "prompt": f"Frage {n}?",
                    "response_a": f"A{n}",
                    "response_b": f"B{n}",
                }
                for n in range(3)
            ],
        )
        import_judgments(
            pairs,
            [
                {"item_external_id": f"p-{n}", "rater": "r0", "value": {"choice": "ab"[n % 2]}}
                for n in range(3)
            ],
        )

        preferences = importlib.import_module(
            f"{PACKAGE}.api.projects.projects_export_preferences_retrieve"
        )
        retractions = importlib.import_module(
            f"{PACKAGE}.api.projects.projects_export_preferences_retractions_retrieve"
        )
        judgments = importlib.import_module(
            f"{PACKAGE}.api.projects.projects_export_judgments_retrieve"
        )
        line_model = importlib.import_module(f"{PACKAGE}.models.preference_line").PreferenceLine
        error_model = importlib.import_module(f"{PACKAGE}.models.error").Error
        client = generated_client.AuthenticatedClient(base_url=live_server.url, token=token)

        answer = preferences.sync_detailed("chat-pairs", client=client)
        assert answer.status_code == 200
        path = tmp_path / "preferences.jsonl"
        path.write_bytes(answer.parsed.payload.read())
        datasets.disable_progress_bars()
        data = datasets.load_dataset(
            "json", data_files=str(path), cache_dir=str(tmp_path / "cache"), split="train"
        )
        assert data.column_names == list(PAIR_COLUMNS)
        assert data["item_id"] == ["p-0", "p-1", "p-2"]
        assert data[1]["chosen"] == "B1"
        # Every line reads into the generated PreferenceLine model.
        lines = [line_model.from_dict(json.loads(raw)) for raw in path.read_text().splitlines()]
        assert [line.item_id for line in lines] == ["p-0", "p-1", "p-2"]

        # The next pull has nothing new: 204, no body, the cursor still set.
        cursor = answer.headers["X-Parity-Cursor"]
        empty = preferences.sync_detailed("chat-pairs", client=client, since=cursor)
        assert (empty.status_code, empty.content, empty.parsed) == (204, b"", None)
        assert empty.headers["X-Parity-Cursor"]
        assert (
            retractions.sync_detailed("chat-pairs", client=client, since=cursor).status_code == 204
        )

        # Errors are JSON everywhere and read into the Error model, the CSV export's included.
        bad = preferences.sync_detailed("chat-pairs", client=client, min_agreement=2.0)
        assert bad.status_code == 400 and isinstance(bad.parsed, error_model)
        assert bad.parsed.errors[0].field == "min_agreement"
        bad = judgments.sync_detailed("chat-pairs", client=client, language="xx-nonsense-")
        assert bad.status_code == 400 and isinstance(bad.parsed, error_model)


def readme_nightly_pull() -> str:
    """The nightly-pull example of README.md's "Preference data" section, as written there."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Preference data") :]
    return section[
        section.index("```python\n") + 10 : section.index("\n```", section.index("```python\n"))
    ]


@pytest.mark.django_db(transaction=True)
class ReadmeNightlyPullTests:
    def test_the_readme_example_keeps_a_copy_equal_to_a_full_pull(
        self, live_server, tmp_path, monkeypatch
    ):
        pairs = ProjectFactory(
            slug="wmt-pairs", task_type=TaskType.PAIRWISE, languages=["de", "sw"], overlap=1
        )
        token = api_token_create(project=pairs, scope="export")[1]
        url = f"{live_server.url}/api/v1/projects/wmt-pairs/export/preferences/"
        code = readme_nightly_pull()
        assert (
            code.count("https://parity.example.org/api/v1/projects/wmt-pairs/export/preferences/")
            == 1
        )
        code = code.replace(
            "https://parity.example.org/api/v1/projects/wmt-pairs/export/preferences/", url
        )
        code = code.replace("<export token>", token)
        monkeypatch.chdir(tmp_path)

        def nightly() -> dict[str, Any]:
            exec(compile(code, "README.md", "exec"), {})  # the documented example, as written
            return json.loads((tmp_path / "preferences.json").read_text())["lines"]

        def full() -> dict[str, Any]:
            body = httpx.get(
                url, params={"language": "sw"}, headers={"Authorization": f"Bearer {token}"}
            ).text
            return {line["item_id"]: line for line in map(json.loads, body.splitlines())}

        def item(n: int, language: str = "sw") -> dict[str, Any]:
            return {
                "external_id": f"p-{n}",
                "language": language,
                "prompt": f"Swali {n}?",
                "response_a": f"A{n}",
                "response_b": f"B{n}",
            }

        def vote(n: int, choice: str, rater: str = "r0") -> dict[str, Any]:
            return {"item_external_id": f"p-{n}", "rater": rater, "value": {"choice": choice}}

        import_items(pairs, [item(0), item(1), item(2), item(9, "de")])
        import_judgments(pairs, [vote(0, "a"), vote(1, "b"), vote(2, "a"), vote(9, "a")])
        assert sorted(nightly()) == ["p-0", "p-1", "p-2"]
        # p-0 becomes an even split (a tie: no line any more), p-1 flips, p-3 is new.
        import_items(pairs, [item(3)])
        import_judgments(
            pairs, [vote(0, "b", "r1"), vote(1, "a", "r1"), vote(1, "a", "r2"), vote(3, "b")]
        )
        copy = nightly()
        assert sorted(copy) == ["p-1", "p-2", "p-3"]
        assert copy["p-1"]["chosen"] == "A1"
        assert copy == full()
        # Nothing changed: both pulls answer 204 and the copy stays as it is.
        assert nightly() == copy
