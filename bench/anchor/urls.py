from django.urls import path

from .views import submit

urlpatterns = [path("api/podcasts/", submit)]
