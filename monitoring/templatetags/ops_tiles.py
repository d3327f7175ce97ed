from typing import Any

from django import template

from monitoring.auth import can_view_dashboard
from monitoring.dashboard.figures import page_tiles

register = template.Library()


@register.inclusion_tag("monitoring/tiles.html", takes_context=True)
def ops_tiles(context: dict[str, Any]) -> dict[str, Any]:
    """The dashboard's headline tiles, for those allowed to see the dashboard."""
    request = context.get("request")
    if request is None or not can_view_dashboard(request.user):
        return {"tiles": []}
    return {"tiles": page_tiles()}
