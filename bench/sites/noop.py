"""A middleware that does nothing, with the same hooks as opsite's: what Django itself charges
for one more middleware in the chain."""

from typing import Any


class NoopMiddleware:
    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        return self.get_response(request)

    def process_view(self, request: Any, view: Any, args: Any, kwargs: Any) -> None:
        return None

    def process_exception(self, request: Any, exception: Exception) -> None:
        return None
