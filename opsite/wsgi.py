import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "opsite.settings.development")

application = get_wsgi_application()

from monitoring.lifecycle import wsgi_starting_loops_on_first_use  # noqa: E402
from opsite.checks import enforce_production_settings  # noqa: E402

enforce_production_settings()
application = wsgi_starting_loops_on_first_use(application)
