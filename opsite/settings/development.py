"""The embedded default: runs with no environment at all."""

from .base import *  # noqa: F403
from .base import DATA_DIR, env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("SECRET_KEY", default="django-insecure-opsite-development-key-not-for-production")
DATA_DIR.mkdir(parents=True, exist_ok=True)
# one machine, no load balancer to tell: stop at once
OPSITE_DRAIN_S = env.float("OPSITE_DRAIN_S", default=0.0)
