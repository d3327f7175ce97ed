from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from realtime.services import RestaurantError, restaurant_create


class Command(BaseCommand):
    help = "Create a restaurant and print its ingest token (shown this once only)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--timezone", default="UTC")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            restaurant, token = restaurant_create(
                slug=options["slug"], name=options["name"], timezone=options["timezone"]
            )
        except RestaurantError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"created restaurant {restaurant.slug} ({restaurant.name})")
        self.stdout.write(f"ingest token: {token}")
        self.stdout.write("store it now: only its hash is kept")
