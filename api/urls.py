from django.urls import include, path
from rest_framework.routers import DefaultRouter

from api import views

router = DefaultRouter(trailing_slash=True)
router.register("entries", views.EntryViewSet, basename="entry")
router.register("batches", views.BatchViewSet, basename="batch")
router.register("keys", views.KeyViewSet, basename="key")

urlpatterns = [
    path("log/", views.LogView.as_view(), name="log"),
    path("", include(router.urls)),
]
