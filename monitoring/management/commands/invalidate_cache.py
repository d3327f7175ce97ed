from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from common.cache import CacheError, invalidate_namespace, invalidate_pattern
from monitoring.dashboard.figures import cache_stats


class Command(BaseCommand):
    help = (
        "Delete cached values: every entry of a namespace (--namespace, repeatable), every key matching a glob "
        "(--pattern 'c:dashboard-*:*'), or one key as the code names it (--key); prints how many went."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--namespace", action="append", metavar="NS", help="a namespace, e.g. dashboard-series")
        group.add_argument("--pattern", metavar="GLOB", help="a glob over keys before the deployment's prefix")
        group.add_argument("--key", metavar="KEY", help="one key, e.g. c:orders-today:<digest>")
        group.add_argument("--list", action="store_true", help="list the dashboard's namespaces and hit ratios")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["list"]:
            for namespace, stats in cache_stats().items():
                ratio = "-" if stats["ratio"] is None else f"{float(stats['ratio']) * 100:.1f} %"
                self.stdout.write(f"{namespace}: {stats['hits']} hits, {stats['misses']} misses, hit ratio {ratio}")
            return
        try:
            if options["namespace"]:
                counts = {ns: invalidate_namespace(ns) for ns in options["namespace"]}
                self.stdout.write(", ".join(f"{ns}: {n} deleted" for ns, n in counts.items()))
            else:
                pattern = options["pattern"] or options["key"]
                literal = options["key"] is not None
                if literal and any(ch in pattern for ch in "*?["):
                    raise CacheError(f"a key has no glob characters; use --pattern for {pattern!r}")
                self.stdout.write(f"{invalidate_pattern(pattern)} deleted")
        except CacheError as exc:
            raise CommandError(str(exc)) from exc
