"""The evaluator processes of the queue benchmark (bench/queue.py): one through the
service layer, one through the pages (a browser stand-in with cookies and CSRF), one
through the REST API. Each waits at the barrier, works until its time is up and puts what
it measured on the results queue."""

from __future__ import annotations

import http.client
import json
import random
import re
import time
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode

from bench._util import django_setup
from bench.queue_seed import PASSWORD, PROJECT_SLUG

ASSIGNMENT_IN_CARD = re.compile(rb"/assignments/(\d+)/submit/")


class _Tally:
    """What one evaluator process measures: claim and submit latencies, errors by kind, and
    its wall-clock and CPU seconds from `start()` to `put()`."""

    def __init__(self, errors: dict[str, int] | None = None) -> None:
        self.claims: list[float] = []
        self.submits: list[float] = []
        self.errors: dict[str, int] = errors if errors is not None else {}

    def start(self) -> float:
        self.started, self.cpu_started = time.perf_counter(), time.process_time()
        return self.started

    def fail(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    def put(self, results: Any, **extra: Any) -> None:
        results.put(
            {
                "claims": self.claims,
                "submits": self.submits,
                "errors": self.errors,
                "elapsed": time.perf_counter() - self.started,
                "cpu": time.process_time() - self.cpu_started,
                **extra,
            }
        )


def service_worker(
    index: int,
    evaluator: dict[str, Any],
    project_id: int,
    seconds: float,
    rate: float,
    barrier: Any,
    results: Any,
) -> None:
    """Claim + submit in a loop; with rate > 0, start cycles at that many per second on
    average (Poisson arrivals), else back to back."""
    django_setup()
    from django.contrib.auth import get_user_model
    from django.db import connection

    from annotation.models import Language, Project
    from annotation.queue import item_claim_next, judgment_submit

    rng = random.Random(index)
    user = get_user_model().objects.get(pk=evaluator["id"])
    project = Project.objects.get(pk=project_id)
    language = Language.objects.get(tag=evaluator["tag"]) if evaluator["tag"] else None
    tally = _Tally()
    barrier.wait()
    start = tally.start()
    deadline = start + seconds
    next_start = start
    try:
        while time.perf_counter() < deadline:
            if rate > 0:
                next_start += rng.expovariate(rate)
                pause = next_start - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                if next_start >= deadline:
                    break
            t0 = time.perf_counter()
            assignment = item_claim_next(evaluator=user, project=project, language=language)
            t1 = time.perf_counter()
            if assignment is None:
                break  # nothing left for this evaluator
            tally.claims.append(t1 - t0)
            try:
                judgment_submit(
                    assignment=assignment,
                    evaluator=user,
                    value={"score": rng.randint(1, 5)},
                    seconds=rng.uniform(5, 60),
                )
            except Exception as exc:  # counted and reported: a bench must finish to say what broke
                tally.fail(type(exc).__name__)
                continue
            tally.submits.append(time.perf_counter() - t1)
    except Exception as exc:
        tally.fail(f"{type(exc).__name__}: {exc}")
    tally.put(results)
    connection.close()


class _Client:
    """A browser stand-in on one keep-alive connection: cookies, CSRF, form posts."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.cookies: dict[str, str] = {}

    def request(
        self,
        method: str,
        path: str,
        *,
        form: dict[str, Any] | None = None,
        data: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        head = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        if self.cookies:
            head["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form, doseq=True).encode()
            head["Content-Type"] = "application/x-www-form-urlencoded"
        elif data is not None:
            # JSON for the REST endpoints; a session needs the CSRF header there.
            body = json.dumps(data).encode()
            head["Content-Type"] = "application/json"
            head["X-CSRFToken"] = self.cookies.get("csrftoken", "")
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=head)
                response = self.conn.getresponse()
                data = response.read()
                break
            except (ConnectionError, http.client.HTTPException):
                # A sync gunicorn worker closes the connection after each response.
                self.conn.close()
                if attempt == 2:
                    raise
        for raw in response.headers.get_all("Set-Cookie") or []:
            cookie = SimpleCookie()
            cookie.load(raw)
            for name, morsel in cookie.items():
                if morsel.value == "" or morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        if response.will_close:
            self.conn.close()
        return response.status, dict(response.headers.items()), data

    def login(self, username: str) -> None:
        self.request("GET", "/accounts/login/")
        status, headers, _ = self.request(
            "POST",
            "/accounts/login/",
            form={
                "username": username,
                "password": PASSWORD,
                "csrfmiddlewaretoken": self.cookies.get("csrftoken", ""),
            },
        )
        if status != 302 or "sessionid" not in self.cookies:
            raise RuntimeError(f"login of {username} failed: HTTP {status}")


def _signed_in(port: int, username: str) -> tuple[_Client, dict[str, int]]:
    """A client logged in as the evaluator, and the errors so far (a failed login is one)."""
    client = _Client(port)
    errors: dict[str, int] = {}
    try:
        client.login(username)
    except Exception as exc:
        errors[str(exc)] = 1
    return client, errors


def http_worker(
    index: int,
    evaluator: dict[str, Any],
    port: int,
    seconds: float,
    htmx: bool,
    barrier: Any,
    results: Any,
) -> None:
    rng = random.Random(1000 + index)
    client, errors = _signed_in(port, evaluator["username"])
    tally = _Tally(errors)
    query = "?" + urlencode({"language": evaluator["tag"]}) if evaluator["tag"] else ""
    work_path = f"/p/{PROJECT_SLUG}/work/{query}"
    hx = {"HX-Request": "true"} if htmx else {}
    barrier.wait()
    deadline = tally.start() + seconds
    card: bytes | None = None
    served = 0  # cards with an item, whether from GET work or (htmx) from the submit
    fail = tally.fail

    try:
        while not errors and time.perf_counter() < deadline:
            if card is None:
                t0 = time.perf_counter()
                status, _, card = client.request("GET", work_path, headers=hx)
                if status != 200:
                    fail(f"GET work: HTTP {status}")
                    break
                tally.claims.append(time.perf_counter() - t0)
            found = ASSIGNMENT_IN_CARD.search(card)
            if found is None:
                break  # an empty queue for this evaluator
            served += 1
            form = {
                "score": rng.randint(1, 5),
                "seconds": round(rng.uniform(5, 60), 1),
                "csrfmiddlewaretoken": client.cookies.get("csrftoken", ""),
            }
            if evaluator["tag"]:
                form["language"] = evaluator["tag"]
            t0 = time.perf_counter()
            path = f"/assignments/{found.group(1).decode()}/submit/"
            status, _, body = client.request("POST", path, form=form, headers=hx)
            elapsed = time.perf_counter() - t0
            if status != (200 if htmx else 302):
                fail(f"POST submit: HTTP {status}")
                break
            tally.submits.append(elapsed)
            # htmx: the next card came back with the submit; otherwise GET it (the redirect).
            card = body if htmx else None
    except Exception as exc:
        fail(f"{type(exc).__name__}: {exc}")
    tally.put(results, served=served)


def rest_worker(
    index: int, evaluator: dict[str, Any], port: int, seconds: float, barrier: Any, results: Any
) -> None:
    """Claim and submit through the REST endpoints with the evaluator's session."""
    rng = random.Random(2000 + index)
    client, errors = _signed_in(port, evaluator["username"])
    tally = _Tally(errors)
    claim_path = f"/api/v1/projects/{PROJECT_SLUG}/queue/claim/"
    claim_body = {"language": evaluator["tag"]} if evaluator["tag"] else {}
    barrier.wait()
    deadline = tally.start() + seconds
    fail = tally.fail

    try:
        while not errors and time.perf_counter() < deadline:
            t0 = time.perf_counter()
            status, _, body = client.request("POST", claim_path, data=claim_body)
            if status == 204:
                break  # an empty queue for this evaluator
            if status != 200:
                fail(f"POST claim: HTTP {status} {body[:200]!r}")
                break
            tally.claims.append(time.perf_counter() - t0)
            assignment_id = json.loads(body)["id"]
            value = {"value": {"score": rng.randint(1, 5)}, "seconds": round(rng.uniform(5, 60), 1)}
            t0 = time.perf_counter()
            status, _, body = client.request(
                "POST", f"/api/v1/assignments/{assignment_id}/judgment/", data=value
            )
            if status != 201:
                fail(f"POST judgment: HTTP {status} {body[:200]!r}")
                break
            tally.submits.append(time.perf_counter() - t0)
    except Exception as exc:
        fail(f"{type(exc).__name__}: {exc}")
    tally.put(results)
