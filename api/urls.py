from django.urls import include, path, re_path
from rest_framework.routers import DefaultRouter

from api import flags, transparency, views

router = DefaultRouter(trailing_slash=True)
router.register("entries", views.EntryViewSet, basename="entry")
router.register("batches", views.BatchViewSet, basename="batch")
router.register("keys", views.KeyViewSet, basename="key")
router.register("flags", flags.FlagViewSet, basename="flag")
router.register("webhooks", flags.WebhookViewSet, basename="webhook")

urlpatterns = [
    path("log/", views.LogView.as_view(), name="log"),
    path("log/checkpoint/", transparency.CheckpointView.as_view(), name="log-checkpoint"),
    path("log/proof/inclusion/", transparency.InclusionProofView.as_view(), name="log-inclusion"),
    path("log/proof/consistency/", transparency.ConsistencyProofView.as_view(), name="log-consistency"),
    re_path(
        r"^batches/(?P<batch_id>[A-Za-z0-9][A-Za-z0-9._:-]{0,63})/bundle/$",
        transparency.BundleView.as_view(),
        name="batch-bundle",
    ),
    path("", include(router.urls)),
    # Anything else under /api/v1/ is a problem+json 404, also with DEBUG on.
    re_path(r"^.*$", views.api_not_found),
]
