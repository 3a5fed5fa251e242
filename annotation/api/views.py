"""The REST API under /api/v1/ (see DESIGN.md, "Public interfaces").

Views are thin: parse input with a small serializer, resolve the project through
`ProjectAccess`, call one service, shape the answer. Who may call what:

| endpoint                              | token scopes        | session            |
|---------------------------------------|---------------------|--------------------|
| GET  projects/                        | any (own project*)  | projects worked/led|
| POST projects/                        | projects            | staff or a lead    |
| GET  projects/{slug}/items/           | read, import        | lead               |
| POST projects/{slug}/items/           | import              | lead               |
| POST projects/{slug}/judgments/       | import              | lead               |
| POST projects/{slug}/queue/claim/     | —                   | evaluator          |
| POST assignments/{id}/judgment/       | —                   | its evaluator      |
| GET  projects/{slug}/agreement/       | read, export        | lead               |
| GET  projects/{slug}/parity/          | read, export        | lead               |
| GET  projects/{slug}/export/…/        | export              | lead               |
| POST projects/{slug}/reports/         | import              | lead               |
| GET  projects/{slug}/datacard/        | read, export        | lead               |

* a `projects` token, which belongs to no project, lists the projects it created.
"""

from __future__ import annotations

import itertools
import logging
import re
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation import metrics
from annotation.agreement import agreement_report, parity_report
from annotation.api import serializers as s
from annotation.api.auth import api_actor, request_token
from annotation.api.errors import ApiError, PayloadTooLarge, error
from annotation.api.parsers import (
    JSONArrayImportParser,
    JSONLinesAltImportParser,
    JSONLinesImportParser,
)
from annotation.api.permissions import IsSessionUser, ProjectAccess, view_project
from annotation.api.renderers import (
    CSVRenderer,
    JSONLinesRenderer,
    MarkdownRenderer,
    ParquetRenderer,
)
from annotation.exports import (
    csv_stream,
    datacard_build,
    datacard_markdown,
    jsonl_stream,
    judgment_export,
    parquet_stream,
    preference_export,
    preference_retractions,
)
from annotation.exports.preferences import PreferenceExport
from annotation.imports import ImportResult, items_import, judgments_import
from annotation.language_check import language_check_enqueue, language_check_items
from annotation.languages import language_tag_normalize
from annotation.models import (
    Assignment,
    AuditEvent,
    Item,
    ItemSource,
    Project,
    TaskType,
    TokenScope,
)
from annotation.progress import progress_csv, progress_report
from annotation.projects import (
    ProjectSlugTaken,
    project_create,
    project_language,
    projects_for_user,
)
from annotation.queue import assignment_with_item, item_claim_next, judgment_submit

logger = logging.getLogger(__name__)

ERROR_DESCRIPTIONS = {
    400: "Bad input; nothing was changed.",
    401: "No or unknown credentials.",
    403: "Not allowed (token scope or role), with the reason.",
    404: "No such project or object (or not visible to the caller).",
    406: "The Accept header asks for a format this endpoint does not give.",
    409: "Conflicts with stored data (e.g. changed content of a judged item).",
    413: "The body is larger than the endpoint accepts.",
    415: "Unsupported Content-Type.",
    429: "Rate limit of the token or user reached; retry after Retry-After seconds.",
}


def _errors(*extra: int) -> dict[tuple[int, str], OpenApiResponse]:
    """The error responses of an endpoint, all in the one error shape, always JSON (the
    exception handler renders them so whatever the endpoint's own formats)."""
    return {
        (code, "application/json"): OpenApiResponse(
            s.ErrorSerializer, description=ERROR_DESCRIPTIONS[code]
        )
        for code in (400, 401, 403, 404, 406, 429, *extra)
    }


def _query(serializer_class: type[s.serializers.Serializer], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.query_params)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _body(serializer_class: type[s.serializers.Serializer], request: Request) -> dict[str, Any]:
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class ProjectAPIView(APIView):
    """A view under /projects/{slug}/; `access` names who may call each method."""

    access: dict[str, ProjectAccess] = {}

    def get_permissions(self) -> list[Any]:
        rule = self.access.get(self.request.method or "", self.access.get("*"))
        return [rule] if rule is not None else [IsAuthenticated()]

    def project(self) -> Project:
        return view_project(self.request, self)

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        try:
            return super().perform_content_negotiation(request, force)
        except Http404:
            # DRF answers an unknown ?format= with 404; it is a bad parameter.
            formats = ", ".join(r.format for r in self.get_renderers())
            raise ApiError(
                [error(_("must be one of %(formats)s") % {"formats": formats}, field="format")]
            ) from None


# ---------------------------------------------------------------------------------------
# Projects
# ---------------------------------------------------------------------------------------


class ProjectListView(APIView):
    @extend_schema(
        summary="List the caller's projects",
        description="A project token sees its own project; a `projects` token the projects it created; "
        "a signed-in user the projects they work or lead.",
        responses={200: s.ProjectOutSerializer(many=True), **_errors()},
    )
    def get(self, request: Request) -> Response:
        token = request_token(request)
        if token is not None and token.scope == TokenScope.PROJECTS:
            projects = Project.objects.filter(
                pk__in=AuditEvent.objects.filter(token=token, verb="project.create").values(
                    "project"
                )
            )
        elif token is not None:
            projects = Project.objects.filter(pk=token.project_id)
        else:
            projects = projects_for_user(user=request.user)
        projects = projects.prefetch_related("languages").order_by("slug")
        return Response(s.ProjectOutSerializer(projects, many=True).data)

    @extend_schema(
        summary="Create a project",
        description="Creates a new project; an existing slug answers 409 and leaves that project as it "
        "is (creating never updates). Who may call: an API token of the scope `projects` (made by an "
        "operator with `manage.py create_token --scope projects --user NAME`; the project is led by "
        "that user), or a signed-in user who is staff, has the add-project permission or leads a "
        "project (the creator becomes its lead). Tokens of a project cannot create projects.",
        request=s.ProjectCreateSerializer,
        responses={201: s.ProjectOutSerializer, **_errors(409)},
    )
    def post(self, request: Request) -> Response:
        token = request_token(request)
        if token is not None:
            if token.scope != TokenScope.PROJECTS:
                raise ApiError(
                    [
                        error(
                            f"This token has the scope {token.scope!r}; creating projects needs a token of the scope "
                            "'projects' (an operator makes one: manage.py create_token --scope projects --user NAME)."
                        )
                    ],
                    status_code=403,
                )
            lead = token.created_by
            if lead is None or not lead.is_active:
                raise ApiError(
                    [
                        error(
                            "The user this token acts for is gone or inactive, so a project it creates would have "
                            "no lead; ask an operator for a new token."
                        )
                    ],
                    status_code=403,
                )
        else:
            lead = request.user
            if not (
                lead.is_staff
                or lead.has_perm("annotation.add_project")
                or lead.led_projects.exists()
            ):
                raise ApiError(
                    [error(_("Only staff and project leads may create projects."))], status_code=403
                )
        data = _body(s.ProjectCreateSerializer, request)
        options = {
            k: data[k]
            for k in (
                "description",
                "queue_on_import",
                "honeypot_rate",
                "lease_seconds",
                "agreement_threshold",
            )
            if k in data
        }
        try:
            project = project_create(
                slug=data["slug"],
                task_type=data["task_type"],
                languages=data["languages"],
                lead=lead,
                name=data.get("name"),
                schema=data.get("schema"),
                overlap=data.get("overlap"),
                actor=api_actor(request),
                token=token,
                **options,
            )
        except ProjectSlugTaken as exc:
            raise ApiError(
                [
                    error(
                        f"A project with the slug {exc.slug!r} exists; creating never changes an existing project. "
                        "Pick another slug.",
                        field="slug",
                    )
                ],
                status_code=409,
            ) from None
        return Response(s.ProjectOutSerializer(project).data, status=status.HTTP_201_CREATED)


# ---------------------------------------------------------------------------------------
# Items: list and bulk import
# ---------------------------------------------------------------------------------------


class ItemCursorPagination(CursorPagination):
    ordering = "id"
    page_size = 100
    page_size_query_param = "page_size"
    max_page_size = 1000


def _language_check_after(response: Response, item_ids: list[int]) -> str:
    """Start the language check of imported items once the import has committed."""
    if not settings.PARITY_LANGUAGE_CHECK or not item_ids:
        return "off"
    if language_check_enqueue(item_ids=item_ids):
        return "queued"

    def check() -> None:
        # Runs after the response went out (WSGI close), so the pipeline does not wait.
        try:
            language_check_items(item_ids=item_ids)
        except Exception:
            logger.exception("language check of %d imported items failed", len(item_ids))

    response._resource_closers.append(check)
    return "after_response"


def _import_response(
    result: ImportResult, *, status_code: int = 200, check_ids: list[int] | None = None
) -> Response:
    response = Response(status=status_code)
    check = _language_check_after(response, result.item_ids if check_ids is None else check_ids)
    response.data = {**result.as_dict(), "language_check": check}
    return response


def _check_content_length(request: Request) -> None:
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length > settings.PARITY_MAX_IMPORT_BYTES:
        raise PayloadTooLarge(
            _("The body is larger than %(limit)d bytes; split the batch.")
            % {"limit": settings.PARITY_MAX_IMPORT_BYTES}
        )


def _records(request: Request) -> Any:
    data = request.data
    return data if not isinstance(data, dict) else iter(())


def _lines_body(serializer_class: type[s.serializers.Serializer]) -> dict[str, Any]:
    """A JSON array, or JSON Lines whose lines are the array's elements (one object per line)."""
    return {
        media: serializer_class(many=True)
        for media in ("application/json", "application/x-ndjson", "application/jsonl")
    }


class ItemsView(ProjectAPIView):
    access = {
        "GET": ProjectAccess(scopes=("read", "import"), session="lead"),
        "POST": ProjectAccess(scopes=("import",), session="lead"),
    }

    def get_parsers(self) -> list[Any]:
        if self.request is not None and self.request.method == "POST":
            return [JSONArrayImportParser(), JSONLinesImportParser(), JSONLinesAltImportParser()]
        return super().get_parsers()

    @extend_schema(
        summary="List items",
        parameters=[
            s.ItemListQuerySerializer,
            OpenApiParameter(
                "cursor", str, description="from `next` or `previous` of the last page"
            ),
            OpenApiParameter("page_size", int, description="1–1000 (default 100)"),
        ],
        responses={200: s.ItemPageSerializer, **_errors()},
    )
    def get(self, request: Request, slug: str) -> Response:
        project = self.project()
        query = _query(s.ItemListQuerySerializer, request)
        items = Item.objects.filter(project=project).select_related("language")
        if query.get("language"):
            try:
                items = items.filter(language__tag=language_tag_normalize(query["language"]))
            except ValidationError as exc:
                raise ApiError([error(exc.messages[0], field="language")]) from None
        if query.get("status"):
            items = items.filter(status=query["status"])
        if query.get("source"):
            items = items.filter(source=query["source"])
        if query.get("flagged") is not None:
            items = items.filter(language_flagged=query["flagged"])
        paginator = ItemCursorPagination()
        page = paginator.paginate_queryset(items, request, view=self)
        return paginator.get_paginated_response(s.ItemOutSerializer(page, many=True).data)

    @extend_schema(
        summary="Bulk import items",
        description="A JSON array or JSON Lines (`application/x-ndjson`), up to "
        f"{settings.PARITY_MAX_IMPORT_LINES:,} lines and {settings.PARITY_MAX_IMPORT_BYTES:,} bytes. Atomic: "
        "one bad line stores nothing and every bad line is listed. Idempotent by external_id: the same "
        "content is a no-op, changed content updates an item without judgments, and a change to a "
        "judged item is refused with 409.",
        request=_lines_body(s.ImportLineSerializer),
        responses={200: s.ImportResultSerializer, **_errors(409, 413, 415)},
        examples=[
            OpenApiExample(
                "pairwise line",
                value={
                    "external_id": "q-17",
                    "language": "sw",
                    "prompt": "…",
                    "response_a": "…",
                    "response_b": "…",
                    "model_a": "m1",
                    "model_b": "m2",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request, slug: str) -> Response:
        project = self.project()
        _check_content_length(request)
        result = items_import(
            project=project,
            records=_records(request),
            actor=api_actor(request),
            token=request_token(request),
        )
        return _import_response(result)


class JudgmentsImportView(ProjectAPIView):
    access = {"POST": ProjectAccess(scopes=("import",), session="lead")}

    def get_parsers(self) -> list[Any]:
        return [JSONArrayImportParser(), JSONLinesImportParser(), JSONLinesAltImportParser()]

    @extend_schema(
        summary="Import historical judgments",
        description="Judgments a team already has, by external rater id; same body formats, limits, "
        "atomicity and idempotency as the item import.",
        request=_lines_body(s.HistoricalLineSerializer),
        responses={200: s.ImportResultSerializer, **_errors(413, 415)},
    )
    def post(self, request: Request, slug: str) -> Response:
        project = self.project()
        _check_content_length(request)
        result = judgments_import(
            project=project,
            records=_records(request),
            actor=api_actor(request),
            token=request_token(request),
        )
        return _import_response(result, check_ids=[])


# ---------------------------------------------------------------------------------------
# Evaluators: claim and submit
# ---------------------------------------------------------------------------------------


def _assignment_out(assignment: Assignment) -> dict[str, Any]:
    item = assignment.item
    # Model names and the assignment kind stay hidden: evaluators judge blind, and a
    # honeypot must look like any other item.
    return {
        "id": assignment.pk,
        "lease_expires_at": assignment.lease_expires_at,
        "item": {
            "id": item.pk,
            "external_id": item.external_id,
            "language": item.language.tag,
            "direction": item.language.direction,
            "prompt": item.prompt,
            "response": item.response,
            "response_a": item.response_a,
            "response_b": item.response_b,
        },
    }


class QueueClaimView(APIView):
    permission_classes = [IsSessionUser]

    @extend_schema(
        summary="Claim the next item",
        description="For a signed-in evaluator: leases the next item in a language they are qualified "
        "for (or returns their live lease). 204 when nothing waits; 403 with the reason when they "
        "are not qualified.",
        request=s.ClaimInSerializer,
        responses={
            200: s.AssignmentOutSerializer,
            204: OpenApiResponse(description="Nothing waits."),
            **_errors(),
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        project = view_project(request, self)
        data = _body(s.ClaimInSerializer, request)
        language = None
        if data.get("language"):
            try:
                tag = language_tag_normalize(data["language"])
            except ValidationError as exc:
                raise ApiError([error(exc.messages[0], field="language")]) from None
            language = project_language(project=project, tag=tag)
            if language is None:
                raise ApiError(
                    [
                        error(
                            _("%(tag)r is not a language of this project.") % {"tag": tag},
                            field="language",
                        )
                    ]
                )
        assignment = item_claim_next(evaluator=request.user, project=project, language=language)
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(_assignment_out(assignment))


_FIELD_PREFIX = re.compile(r"^([a-z_]+): (.+)$", re.DOTALL)


class JudgmentSubmitView(APIView):
    permission_classes = [IsSessionUser]

    @extend_schema(
        summary="Submit a judgment",
        description='The value has the project\'s shape: rating {"score"}, pairwise {"choice", '
        '"strength"}, labels {"labels"}; any may add issues and comment.',
        request=s.JudgmentInSerializer,
        responses={201: s.JudgmentOutSerializer, **_errors()},
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        data = _body(s.JudgmentInSerializer, request)
        assignment = assignment_with_item(assignment_id)
        if assignment is None:
            raise ApiError(
                [error(_("No assignment %(id)s.") % {"id": assignment_id})], status_code=404
            )
        if assignment.evaluator_id != request.user.pk:
            raise PermissionDenied(_("This assignment is not yours."))
        try:
            judgment = judgment_submit(
                assignment=assignment,
                evaluator=request.user,
                value=data["value"],
                seconds=data.get("seconds"),
            )
        except ValidationError as exc:
            entries = []
            for message in exc.messages:
                match = _FIELD_PREFIX.match(message)
                entries.append(
                    error(match.group(2), field=f"value.{match.group(1)}")
                    if match
                    else error(message)
                )
            raise ApiError(entries) from None
        return Response(
            {
                "id": judgment.pk,
                "assignment": assignment.pk,
                "item": judgment.item_id,
                "value": judgment.value,
                "revision": judgment.revision,
                "too_fast": judgment.too_fast,
                "created_at": judgment.created_at,
            },
            status=status.HTTP_201_CREATED,
        )


# ---------------------------------------------------------------------------------------
# Reports
# ---------------------------------------------------------------------------------------


class AgreementView(ProjectAPIView):
    access = {"GET": ProjectAccess(scopes=("read", "export"), session="lead")}

    @extend_schema(
        summary="Agreement (Krippendorff's alpha with a bootstrap CI)",
        parameters=[s.AgreementQuerySerializer],
        responses={200: s.AgreementOutSerializer, **_errors()},
    )
    def get(self, request: Request, slug: str) -> Response:
        query = _query(s.AgreementQuerySerializer, request)
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
            **_errors(),
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        query = _query(s.ParityQuerySerializer, request)
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


# ---------------------------------------------------------------------------------------
# Exports
# ---------------------------------------------------------------------------------------


def _streaming(chunks: Any, *, content_type: str, filename: str) -> StreamingHttpResponse:
    kind = (
        filename.rsplit(".", 1)[0].split("-")[-1] if "-" in filename else filename.rsplit(".", 1)[0]
    )
    chunks = metrics.export_counted(chunks, kind=kind, lines="parquet" not in content_type)
    response = StreamingHttpResponse(chunks, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def _preference_filters(query: dict[str, Any]) -> dict[str, Any]:
    """The service's options from a pull's query (lines and retractions alike)."""
    return {
        "method": query["method"],
        "style": query["style"],
        "shape": query["shape"],
        "pairs": query["pairs"],
        "language": query.get("language"),
        "min_agreement": query.get("min_agreement"),
        "exclude_ties": not query["include_ties"],
        "min_gap": query.get("min_gap"),
        "threshold": query.get("threshold"),
        "split": query.get("split"),
        "test_fraction": query.get("test_fraction"),
        "margin": query.get("margin"),
        "signals": query["signals"],
        "prompt_template": query.get("prompt_template"),
    }


DOWNLOAD_MEDIA_TYPE = "application/octet-stream"


def _asks_for_download(request: Request) -> bool:
    """Whether the caller asks for the pull's bytes as a plain download (`Accept:
    application/octet-stream` first), as clients generated from the schema do for binary bodies."""
    first = request.META.get("HTTP_ACCEPT", "").split(",")[0]
    return first.split(";")[0].strip().lower() == DOWNLOAD_MEDIA_TYPE


class PullView(ProjectAPIView):
    """A preference pull: JSON Lines or Parquet, or the same bytes as application/octet-stream."""

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # The bytes of a download are the asked format's; the renderer only shapes errors (JSON).
        return super().perform_content_negotiation(request, force or _asks_for_download(request))


def _pull_response(
    export: PreferenceExport, chunks: Any, *, request: Request, content_type: str, filename: str
) -> StreamingHttpResponse | HttpResponse:
    """The pull's stream, or 204 No Content (with the cursor) when it has no line: an
    empty body would make `datasets.load_dataset` fail."""
    first = next(export.rows, None)
    if first is None:
        export.rows.close()
        response: StreamingHttpResponse | HttpResponse = HttpResponse(
            status=status.HTTP_204_NO_CONTENT
        )
    else:
        if _asks_for_download(request):
            content_type = DOWNLOAD_MEDIA_TYPE
        response = _streaming(
            chunks(itertools.chain([first], export.rows)),
            content_type=content_type,
            filename=filename,
        )
    response["X-Parity-Cursor"] = export.cursor
    return response


_SINCE_TEXT = (
    "Incremental pulls: with `since` (the `X-Parity-Cursor` of an earlier pull) the answer holds the "
    "current line of every item whose line changed since that cursor — new, label flipped, tie decided, "
    "agreement crossing `min_agreement`, revised, adjudicated — and that qualifies under this pull's "
    "filters; items changed since that no longer qualify are listed by "
    "`export/preferences/retractions/` with the same `since` and filters. Pull the lines, then the "
    "retractions; delete the retracted `item_id`s, upsert the lines by `item_id`, and keep the lines' "
    "cursor for the next pull: any sequence of pulls then equals a full pull. An item may come again "
    "without a change (upserting it again is harmless). An empty pull answers 204 No Content with the "
    "cursor. `method=dawid_skene` re-weighs every rater on each fit, so it is pulled in full only."
)


class PreferenceExportView(PullView):
    access = {"GET": ProjectAccess(scopes=("export",), session="lead")}
    renderer_classes = [JSONLinesRenderer, ParquetRenderer, JSONRenderer]

    @extend_schema(
        summary="Export preference data (streamed)",
        description="Preference lines for DPO, reward-model and KTO-style training, loadable as-is with "
        "Hugging Face `datasets` and TRL. JSON Lines or Parquet; `style=conversational` gives role/content "
        "message lists. Each line is a `PreferenceLine` (shape=pairs) or an `UnpairedLine` "
        "(shape=unpaired); see those schemas. No column is named `margin` unless `margin=scaled`. "
        "`Accept: application/octet-stream` gets the same bytes as a plain download. "
        + _SINCE_TEXT,
        parameters=[s.PreferenceQuerySerializer],
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="JSON Lines (one PreferenceLine or UnpairedLine per line) or "
                "Parquet, as `format` asks; the same bytes as application/octet-stream when Accept asks for it.",
            ),
            (200, "application/vnd.apache.parquet"): OpenApiResponse(OpenApiTypes.BINARY),
            (200, DOWNLOAD_MEDIA_TYPE): OpenApiResponse(OpenApiTypes.BINARY),
            204: OpenApiResponse(
                description="No line: nothing changed since the cursor (X-Parity-Cursor is set)."
            ),
            **_errors(),
        },
    )
    def get(self, request: Request, slug: str) -> StreamingHttpResponse | HttpResponse:
        project = self.project()
        query = _query(s.PreferenceQuerySerializer, request)
        export = preference_export(
            project=project,
            since=query.get("since"),
            actor=api_actor(request),
            token=request_token(request),
            **_preference_filters(query),
        )
        if query["format"] == "parquet":
            return _pull_response(
                export,
                lambda rows: parquet_stream(rows, schema=export.schema),
                request=request,
                content_type=ParquetRenderer.media_type,
                filename=f"{project.slug}-preferences.parquet",
            )
        return _pull_response(
            export,
            jsonl_stream,
            request=request,
            content_type=JSONLinesRenderer.media_type,
            filename=f"{project.slug}-preferences.jsonl",
        )


class PreferenceRetractionsView(PullView):
    access = {"GET": ProjectAccess(scopes=("export",), session="lead")}
    renderer_classes = [JSONLinesRenderer, JSONRenderer]

    @extend_schema(
        summary="Retractions of an incremental preference pull (streamed)",
        description='JSON Lines of `RetractionLine` (`{"item_id": …}`): the keys of lines that items changed '
        "since `since` no longer have under the same filters as the pull. " + _SINCE_TEXT,
        parameters=[s.PreferenceFilterSerializer],
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(
                OpenApiTypes.BINARY,
                description="One RetractionLine per line; the same bytes as "
                "application/octet-stream when Accept asks for it.",
            ),
            (200, DOWNLOAD_MEDIA_TYPE): OpenApiResponse(OpenApiTypes.BINARY),
            204: OpenApiResponse(description="Nothing to retract (X-Parity-Cursor is set)."),
            **_errors(),
        },
    )
    def get(self, request: Request, slug: str) -> StreamingHttpResponse | HttpResponse:
        project = self.project()
        query = _query(s.PreferenceFilterSerializer, request)
        export = preference_retractions(
            project=project,
            since=query.get("since"),
            actor=api_actor(request),
            token=request_token(request),
            **_preference_filters(query),
        )
        return _pull_response(
            export,
            jsonl_stream,
            request=request,
            content_type=JSONLinesRenderer.media_type,
            filename=f"{project.slug}-retractions.jsonl",
        )


class JudgmentExportView(ProjectAPIView):
    access = {"GET": ProjectAccess(scopes=("export",), session="lead")}
    renderer_classes = [JSONLinesRenderer, CSVRenderer, JSONRenderer]

    @extend_schema(
        summary="Export raw judgments (streamed)",
        description="Current production and historical judgments; evaluators by pseudonym, external "
        "raters by their id. JSON Lines or CSV (the value as JSON in one column).",
        parameters=[s.JudgmentExportQuerySerializer],
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.STR),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR),
            **_errors(),
        },
    )
    def get(self, request: Request, slug: str) -> StreamingHttpResponse:
        project = self.project()
        query = _query(s.JudgmentExportQuerySerializer, request)
        rows = judgment_export(project=project, language=query.get("language"))
        if query["format"] == "csv":
            return _streaming(
                csv_stream(rows),
                content_type="text/csv; charset=utf-8",
                filename=f"{project.slug}-judgments.csv",
            )
        return _streaming(
            jsonl_stream(rows),
            content_type=JSONLinesRenderer.media_type,
            filename=f"{project.slug}-judgments.jsonl",
        )


# ---------------------------------------------------------------------------------------
# User reports and the data card
# ---------------------------------------------------------------------------------------


def _conversation_text(messages: list[dict[str, str]]) -> str:
    return "\n\n".join(f"{m['role']}: {m['content']}" for m in messages)


class UserReportView(ProjectAPIView):
    access = {"POST": ProjectAccess(scopes=("import",), session="lead")}

    @extend_schema(
        summary="Report a bad model output",
        description="End-user feedback from a product (the conversation, its language, what went "
        "wrong) becomes an item with source user_report: it appears in the leads' triage list and "
        "goes to native speakers of its language like any item. Only rating and labels projects "
        "take reports (a report has one output, not two).",
        request=s.ReportInSerializer,
        responses={201: s.ReportOutSerializer, 200: s.ReportOutSerializer, **_errors()},
    )
    def post(self, request: Request, slug: str) -> Response:
        project = self.project()
        if project.task_type == TaskType.PAIRWISE:
            raise ApiError(
                [
                    error(
                        _(
                            "A pairwise project compares two outputs; send reports to a rating or "
                            "labels project."
                        )
                    )
                ]
            )
        data = _body(s.ReportInSerializer, request)
        conversation = [dict(m) for m in data["conversation"]]
        metadata = dict(data.get("metadata") or {})
        metadata.update(
            {"conversation": conversation, "report": {"what_went_wrong": data["what_went_wrong"]}}
        )
        external_id = data.get("external_id") or f"report-{uuid.uuid4().hex}"
        record = {
            "external_id": external_id,
            "language": data["language"],
            "prompt": _conversation_text(conversation[:-1]),
            "response": conversation[-1]["content"],
            "model": data.get("model", ""),
            "metadata": metadata,
            "source": ItemSource.USER_REPORT,
        }
        result = items_import(
            project=project,
            records=[(1, record)],
            actor=api_actor(request),
            token=request_token(request),
        )
        item = Item.objects.get(project=project, external_id=external_id)
        response = _import_response(result, status_code=201 if result.created else 200)
        response.data = {
            "item_id": item.pk,
            "external_id": external_id,
            "status": item.status,
            "created": bool(result.created),
        }
        return response


class DatacardView(ProjectAPIView):
    access = {"GET": ProjectAccess(scopes=("read", "export"), session="lead")}
    renderer_classes = [JSONRenderer, MarkdownRenderer]

    @extend_schema(
        summary="The data card of the project's exports",
        description="Languages and counts, evaluators and agreement per language, guideline "
        "versions, item sources and their licences. JSON, or Markdown with `?format=md` or "
        "`Accept: text/markdown`.",
        parameters=[s.DatacardQuerySerializer],
        responses={
            (200, "application/json"): s.DatacardSerializer,
            (200, "text/markdown"): OpenApiResponse(OpenApiTypes.STR),
            **_errors(),
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        _query(s.DatacardQuerySerializer, request)
        card = datacard_build(project=self.project())
        if isinstance(request.accepted_renderer, MarkdownRenderer):
            return Response(datacard_markdown(card), content_type="text/markdown; charset=utf-8")
        return Response(card)
