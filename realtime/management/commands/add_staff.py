from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from realtime.models import StaffMembership
from realtime.services import RestaurantError, staff_add


class Command(BaseCommand):
    help = "Grant a user (created if needed) access to a restaurant's live orders."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")
        parser.add_argument("username")
        parser.add_argument("--password", default=None)
        parser.add_argument("--role", default=StaffMembership.Role.STAFF, choices=StaffMembership.Role.values)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            membership, created = staff_add(
                slug=options["slug"], username=options["username"], password=options["password"], role=options["role"]
            )
        except RestaurantError as exc:
            raise CommandError(str(exc)) from exc
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        verb = "created user" if created else "user"
        self.stdout.write(f"{verb} {membership.user} is {membership.role} of {membership.restaurant.slug}")
