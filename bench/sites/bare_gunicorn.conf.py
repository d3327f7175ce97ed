# The bare project served as opsite's gunicorn.conf.py serves opsite, without opsite's hooks.
worker_class = "gthread"
threads = 4
keepalive = 75
