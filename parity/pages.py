"""Every refusal a browser gets is a page of Parity, or a swap into the page it came from.

- An htmx request that meets the login redirect (the session expired) gets `HX-Redirect` to
  the login page with `next` = the page the evaluator was on, never the login form nested in
  the item card, and never `next` = a POST-only URL (that would end in a 405 after login).
- A form POST without a session goes back, after login, to the page the form was on.
- A 405 is the styled page (Django has no handler405).
- A failed CSRF check (all cookies gone) is the same as an expired session for htmx, and
  a styled page with the way back otherwise.

Configuration-level plumbing like `parity/auth.py`: no domain code here.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme


def _same_site_path(request: HttpRequest, url: str) -> str:
    """The path and query of `url` when it points into this site; '' otherwise."""
    if not url or not url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return ""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def page_to_return_to(request: HttpRequest) -> str:
    """Where a person should land after logging in again: the page they were looking at
    (htmx sends it as HX-Current-URL; a plain form as Referer), or this URL when it is a GET."""
    if request.headers.get("HX-Request"):
        current = _same_site_path(request, request.headers.get("HX-Current-URL", ""))
        if current:
            return current
    if request.method in ("GET", "HEAD"):
        return request.get_full_path()
    return _same_site_path(request, request.headers.get("Referer", "")) or "/"


def login_url_for(request: HttpRequest) -> str:
    return f"{settings.LOGIN_URL}?{urlencode({'next': page_to_return_to(request)})}"


def htmx_redirect(url: str) -> HttpResponse:
    # 200 with an empty body: htmx follows HX-Redirect and swaps nothing.
    response = HttpResponse(status=200)
    response["HX-Redirect"] = url
    return response


class RefusalPagesMiddleware:
    """Login redirects that an htmx request or a POST would follow wrongly, and 405s."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path.startswith("/api/"):
            return response
        if response.status_code == 302 and _is_login_redirect(response):
            if request.headers.get("HX-Request"):
                return htmx_redirect(login_url_for(request))
            if request.method not in ("GET", "HEAD"):
                response["Location"] = login_url_for(request)
            return response
        if response.status_code == 405 and not response.content:
            refused = render(request, "405.html", status=405)
            refused["Allow"] = response.get("Allow", "")
            return refused
        return response


def _is_login_redirect(response: HttpResponse) -> bool:
    location = response.get("Location", "")
    return urlsplit(location).path == settings.LOGIN_URL


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW. A form posted after the cookies went (expired, cleared, another
    browser profile): htmx is sent to log in again (or to reload the page when the session
    is still there), so the card comes back with its draft; a plain form gets a styled page."""
    if request.headers.get("HX-Request"):
        if not request.user.is_authenticated:
            return htmx_redirect(login_url_for(request))
        response = HttpResponse(status=200)
        response["HX-Refresh"] = "true"
        return response
    return render(request, "403_csrf.html", {"back": page_to_return_to(request)}, status=403)
