"""opsite as configured by the bench environment, with the bench's pages added."""

from opsite.settings.development import *  # noqa: F403

ROOT_URLCONF = "sites.opsite_urls"
