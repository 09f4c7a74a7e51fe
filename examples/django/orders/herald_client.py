"""One Herald client for the process. The package is clients/python in the Herald repository:
pip install path/to/herald/clients/python (it has no dependencies)."""

from functools import lru_cache

from django.conf import settings
from herald import Herald


@lru_cache(maxsize=None)
def herald() -> Herald:
    return Herald(settings.HERALD_URL, settings.HERALD_KEY, timeout=5, retries=3,
                  token_secret=settings.HERALD_TOKEN_SECRET)
