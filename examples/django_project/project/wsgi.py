"""The WSGI entry point: Django's application wrapped in ReproxyMiddleware.

``gunicorn project.wsgi:application``; ``manage.py runserver`` serves it too
(``WSGI_APPLICATION``).
"""

import os
from urllib.parse import urlsplit

from django.conf import settings
from django.core.wsgi import get_wsgi_application

from wsgi_reproxy import ReproxyMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")


def with_reproxy(app):
    """Wrap ``app`` in the middleware, configured from the settings.

    Reproxying is enabled under ``settings.REPROXY_ALLOW`` only, for targets on the
    replicas (their ``host:port``) only; the client gets the view's Content-Type and
    Content-Disposition, the replica's bytes and everything else.
    """
    return ReproxyMiddleware(
        app,
        allow=settings.REPROXY_ALLOW,
        preserve=["Content-Type", "Content-Disposition"],
        upstream_hosts=[urlsplit(replica).netloc for replica in settings.STORAGE_REPLICAS],
    )


application = with_reproxy(get_wsgi_application())
