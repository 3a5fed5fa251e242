from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "parity.settings")
application = get_wsgi_application()
# Import every view (and the libraries behind them) now, not on a worker's first request,
# which otherwise waits seconds for them; with gunicorn's preload_app the workers inherit
# them from the master already imported.
get_resolver().url_patterns  # noqa: B018
