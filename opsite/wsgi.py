import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsite.settings.development")

application = get_wsgi_application()

from opsite.checks import enforce_production_settings  # noqa: E402

enforce_production_settings()
