from django.urls import include, path

urlpatterns = [
    path("downloads/", include("downloads.urls")),
]
