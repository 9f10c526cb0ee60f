"""The verifiable log over HTTP: checkpoints, inclusion and consistency proofs, bundles.

Checkpoints and proofs are public (they reveal hashes only); publishing on demand is for
auditors and operators; a bundle is visible to whoever may see its batch. Hashes in JSON
are lowercase hex; the checkpoint note is served exactly as signed (C2SP, base64 root).
"""

from __future__ import annotations

import re
from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from api.problems import problem_response
from ledger import transparency
from ledger.models import Batch

_COUNT = re.compile(r"[0-9]{1,19}")
_TEXT = "text/plain; charset=utf-8"


class ForceNegotiationMixin:
    """Serve the declared representation whatever the Accept header says (a checkpoint is
    text/plain, errors are problem+json) instead of answering 406."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        return super().perform_content_negotiation(request, force=True)  # type: ignore[misc]


class IsAuditorOrOperator(permissions.BasePermission):
    """Auditors (organisation role) and operators (superusers)."""

    message = "Only auditors and operators may publish a checkpoint on demand."

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        org = getattr(user, "organisation", None)
        return bool(getattr(user, "is_superuser", False) or (org is not None and org.is_auditor))


def _optional_count(request: Request, name: str) -> int | None:
    """A non-negative decimal query parameter, or None when absent."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    if not _COUNT.fullmatch(raw):
        raise transparency.ProofRequestError(
            "invalid-request", f"{name}={raw!r} is not a non-negative integer (decimal digits only)."
        )
    return int(raw)


def _count(request: Request, name: str) -> int:
    """A required non-negative decimal query parameter."""
    value = _optional_count(request, name)
    if value is None:
        raise transparency.ProofRequestError("invalid-request", f"The query parameter {name} is required.")
    return value


def _problem(exc: transparency.ProofRequestError) -> Response:
    title = {
        "no-checkpoint": "No checkpoint yet",
        "not-checkpointed": "Tree size not covered by a checkpoint",
        "index-out-of-range": "Leaf index out of range",
        "empty-first-tree": "Consistency from the empty tree",
        "sizes-reversed": "First size larger than second",
    }.get(exc.code)
    return problem_response(exc.code, exc.detail, status_code=exc.status, title=title)


@extend_schema(tags=["log"])
class CheckpointView(ForceNegotiationMixin, APIView):
    """The latest signed checkpoint (GET, public); publish one now (POST, auditors)."""

    def get_permissions(self) -> list[permissions.BasePermission]:
        if self.request.method == "POST":
            return [permissions.IsAuthenticated(), IsAuditorOrOperator()]
        return [permissions.AllowAny()]

    @extend_schema(
        responses={
            (200, "text/plain"): OpenApiResponse(
                OpenApiTypes.STR, description="C2SP signed note: origin, size, base64 root, signature"
            ),
            404: OpenApiResponse(description="no checkpoint published yet (problem+json)"),
        }
    )
    def get(self, request: Request) -> HttpResponse | Response:
        latest = transparency.latest_checkpoint()
        if latest is None:
            return _problem(
                transparency.ProofRequestError(
                    "no-checkpoint",
                    "No checkpoint has been published yet (the log is empty or the first "
                    "checkpoint is under way).",
                    404,
                )
            )
        return HttpResponse(latest.note, content_type=_TEXT)

    @extend_schema(
        request=None,
        responses={201: OpenApiTypes.OBJECT, 200: OpenApiTypes.OBJECT},
        description="Integrate the new entries and sign a checkpoint now; 200 if the log has not grown.",
    )
    def post(self, request: Request) -> Response:
        published = transparency.integrate_and_publish()
        if published is None:
            return _problem(transparency.ProofRequestError("no-checkpoint", "The log is empty.", 404))
        checkpoint = published.checkpoint
        body = {"size": checkpoint.size, "root": checkpoint.root, "checkpoint": checkpoint.note}
        return Response(body, status=status.HTTP_201_CREATED if published.created else status.HTTP_200_OK)


@extend_schema(
    tags=["log"],
    parameters=[
        OpenApiParameter("index", int, required=True, description="leaf index = the entry's seq"),
        OpenApiParameter("size", int, description="tree size; default and maximum: the latest checkpoint's"),
    ],
    responses={200: OpenApiTypes.OBJECT},
)
class InclusionProofView(APIView):
    """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""

    permission_classes = [permissions.AllowAny]

    def get(self, request: Request) -> Response:
        try:
            proof = transparency.inclusion_proof(_count(request, "index"), _optional_count(request, "size"))
        except transparency.ProofRequestError as exc:
            return _problem(exc)
        return Response(proof.as_json())


@extend_schema(
    tags=["log"],
    parameters=[
        OpenApiParameter("first", int, required=True, description="the older tree size (>= 1)"),
        OpenApiParameter("second", int, description="the newer tree size; default: the latest checkpoint's"),
    ],
    responses={200: OpenApiTypes.OBJECT},
)
class ConsistencyProofView(APIView):
    """RFC 9162 consistency proof that the tree of ``second`` leaves extends ``first``."""

    permission_classes = [permissions.AllowAny]

    def get(self, request: Request) -> Response:
        try:
            proof = transparency.consistency_proof(
                _count(request, "first"), _optional_count(request, "second")
            )
        except transparency.ProofRequestError as exc:
            return _problem(exc)
        return Response(proof.as_json())


@extend_schema(tags=["batches"], responses={200: OpenApiTypes.OBJECT})
class BundleView(APIView):
    """The offline-verifiable ``magnet-ledger/bundle/v1`` document of a batch (docs/verifying.md)."""

    def get(self, request: Request, batch_id: str) -> Response:
        batch = Batch.objects.visible_to(request.user).select_related("custodian").filter(pk=batch_id).first()
        if batch is None:
            return problem_response("not-found", f"No batch {batch_id!r} that you may see.", status_code=404)
        response = Response(transparency.build_bundle(batch))
        response["Content-Disposition"] = f'attachment; filename="{batch.id}.bundle.json"'
        return response
