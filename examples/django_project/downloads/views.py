"""``GET``/``HEAD /downloads/<name>``: reproxy when the middleware can, else serve the bytes."""

from django.conf import settings
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_safe

from wsgi_reproxy import can_reproxy, reproxy_headers

from .storage import CATALOGUE, open_first, replica_urls


@require_safe
def download(request, name):
    stored = CATALOGUE.get(name)
    if stored is None:
        raise Http404("no such file")
    urls = replica_urls(settings.STORAGE_REPLICAS, stored)
    if can_reproxy(request.META):
        # The middleware (project/wsgi.py) discards this empty body and streams the first
        # working replica, keeping our Content-Type and Content-Disposition.
        response = HttpResponse(b"", content_type=stored.content_type)
        for header, value in reproxy_headers(*urls, expected_size=stored.size):
            response.headers[header] = value
    else:
        body = open_first(urls, request.method, stored)
        if body is None:
            return HttpResponse(
                "the file could not be fetched from storage\n",
                status=502,
                content_type="text/plain; charset=utf-8",
            )
        response = StreamingHttpResponse(body, content_type=stored.content_type)
        response.headers["Content-Length"] = str(stored.size)
    response.headers["Content-Disposition"] = content_disposition_header(True, stored.name)
    return response
