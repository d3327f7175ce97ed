"""opsite's shared library: what every app uses and no app owns (request state, Redis, the
replica router, rate limits, HTTP errors, validation, background loops, clocks, scheduling).
It imports no app of the project; the apps import it."""
