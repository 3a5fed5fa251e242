"""Reports: agreement and the per-language parity report."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from annotation.agreement import agreement_report, parity_report
from annotation.api import serializers as s
from annotation.api.errors import ApiError, error
from annotation.api.permissions import ProjectAccess
from annotation.api.renderers import CSVRenderer
from annotation.api.views.base import ProjectAPIView, error_responses, query_data
from annotation.progress import progress_csv, progress_report


class AgreementView(ProjectAPIView):
    access = {"GET": ProjectAccess(scopes=("read", "export"), session="lead")}

    @extend_schema(
        summary="Agreement (Krippendorff's alpha with a bootstrap CI)",
        parameters=[s.AgreementQuerySerializer],
        responses={200: s.AgreementOutSerializer, **error_responses()},
    )
    def get(self, request: Request, slug: str) -> Response:
        query = query_data(s.AgreementQuerySerializer, request)
        report = agreement_report(
            project=self.project(),
            language=query.get("language") or None,
            level=query.get("level"),
            by=query.get("by") or None,
            seed=query["seed"],
            resamples=query["resamples"],
        )
        return Response(report)


class ParityView(ProjectAPIView):
    access = {"GET": ProjectAccess(scopes=("read", "export"), session="lead")}
    renderer_classes = [JSONRenderer, CSVRenderer]

    @extend_schema(
        summary="The per-language parity report",
        description="Without `by`: the snapshot per language. With `by=model` (model versions in release "
        "order) or `by=period` (`period=week|month` of judgment): per language, quality per version or "
        "period with its 95% CI, the change from the previous one with the CI of the difference and a "
        "verdict (better / worse / no_evidence), the gap to the best language and whether it narrowed, "
        "Bradley–Terry strengths (pairwise), alpha per guideline version and calibration round, "
        "breakdowns and next actions; `since_round`: each language as it stood when the latest "
        "active-learning round ran and as it stands now (items judged, quality with its CI and the "
        "CI's width), null before any round. `?format=csv` (with `by`) gives one row per language and key.",
        parameters=[s.ParityQuerySerializer],
        responses={
            (200, "application/json"): s.ParityOutSerializer,
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR),
            **error_responses(),
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        query = query_data(s.ParityQuerySerializer, request)
        csv_wanted = isinstance(request.accepted_renderer, CSVRenderer)
        if not query.get("by"):
            if csv_wanted:
                raise ApiError([error("CSV needs by=model or by=period", field="by")])
            return Response(
                parity_report(
                    project=self.project(), seed=query["seed"], resamples=query["resamples"]
                )
            )
        report = progress_report(
            project=self.project(),
            by=query["by"],
            period=query["period"],
            seed=query["seed"],
            resamples=query["resamples"],
        )
        if csv_wanted:
            return Response(progress_csv(report), content_type="text/csv; charset=utf-8")
        return Response(report)
