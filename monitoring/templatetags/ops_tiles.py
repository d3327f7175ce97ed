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


@register.filter
def share(value: float | None, digits: int = 2) -> str:
    """A share as a percentage (0.9931 -> "99.31 %"); a dash for none."""
    return "\u2013" if value is None else f"{value * 100:.{digits}f} %"


@register.filter
def burn(value: float | None) -> str:
    return "\u2013" if value is None else f"{value:.1f}\u00d7"


@register.filter
def seconds(value: float | None) -> str:
    """A duration in words for a table cell: 4 s, 3 min 20 s, 2 h 5 min."""
    if value is None:
        return "\u2013"
    whole = int(value)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60} min"


@register.filter
def get_item(mapping: dict[str, Any] | None, key: str) -> Any:
    return None if mapping is None else mapping.get(key)
