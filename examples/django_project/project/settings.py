"""Settings for the wsgi-reproxy Django example: no database, no sessions, no templates.

Configured from the environment:

``STORAGE_REPLICAS``  the storage replicas' base URLs, space-separated
                      (default ``http://127.0.0.1:9001 http://127.0.0.1:9002``)
``REPROXY_ALLOW``     path prefixes where reproxying is enabled (default ``/downloads/``;
                      set it empty to see the view serve the bytes itself)
``DJANGO_DEBUG``      ``1`` for debug pages
``DJANGO_SECRET_KEY`` set it in any real deployment
"""

import os

DEBUG = os.environ.get("DJANGO_DEBUG", "") == "1"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-example-key-do-not-deploy")
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]", "testserver"]

INSTALLED_APPS = ["downloads"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "project.urls"
WSGI_APPLICATION = "project.wsgi.application"  # `manage.py runserver` serves it too
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

STORAGE_REPLICAS = os.environ.get(
    "STORAGE_REPLICAS", "http://127.0.0.1:9001 http://127.0.0.1:9002"
).split()
REPROXY_ALLOW = os.environ.get("REPROXY_ALLOW", "/downloads/").split()
