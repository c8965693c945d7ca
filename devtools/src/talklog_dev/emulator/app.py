"""The emulator's HTTP API: OAuth token, REST, Bulk API 2.0, and the ``/__emulator__`` admin API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from talklog.salesforce.metadata import PicklistValueSpec
from talklog_dev.emulator.bulk import BulkEngine, BulkError
from talklog_dev.emulator.convert import convert_lead
from talklog_dev.emulator.faults import FaultDice, Faults, Usage
from talklog_dev.emulator.ids import to18
from talklog_dev.emulator.records import MultipleMatches, RecordError, RecordStore, SfError
from talklog_dev.emulator.rep_click import rep_click
from talklog_dev.emulator.schema import RECORD_TYPES, Field, Schema, SObject, build_schema
from talklog_dev.emulator.soql import Evaluator, SoqlError, parse
from talklog_dev.emulator.validation import compile_rules

LATEST_VERSION = "66.0"
VERSIONS = [f"{n}.0" for n in range(31, 67)]
ORG_ID = to18("00DEm0000000001")
DEFAULT_CLIENT_ID = "talklog-emulator"
COLLECTION_LIMIT = 200
RETRIEVE_POST_LIMIT = 2000
UPSERT_RESULT_SINCE = 46.0
"""From API 46.0 a REST upsert answers a body with ``created`` (200 on update, was 204)."""
UPDATE_ONLY_SINCE = 61.0
"""``updateOnly=true`` on a REST upsert exists from API 61.0 (Summer '24)."""
QUERY_BATCH = 2000
CSV_TYPE = "text/csv; charset=UTF-8"


def version_label(version: str) -> str:
    """Salesforce's release name for an API version (66.0 -> Spring '26)."""
    offset = 66 - int(float(version))
    season = ("Spring", "Winter", "Summer")[offset % 3]
    return f"{season} '{26 - (offset + 1) // 3:02d}"


@dataclass
class EmulatorConfig:
    """Credentials and limits fixed at start."""

    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    """Password (including any security token) of every emulator user for the password flow."""
    daily_api_limit: int = 100_000


@dataclass
class SessionInfo:
    user_id: str
    issued_at: float
    calls: int = 0
    expired: bool = False


class EmulatorState:
    """Everything one running emulator holds: records, jobs, sessions, faults, counters."""

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        state_path: str | None = None,
        schema: Schema | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.config = config or EmulatorConfig()
        self.schema = schema or build_schema()
        self.store = RecordStore(self.schema, state_path)
        self.bulk = BulkEngine(self.store)
        self.faults = faults or Faults()
        self.initial_faults = replace(self.faults)
        self.usage = Usage(daily_limit=self.config.daily_api_limit)
        self.dice = FaultDice(self.faults.lock_seed)
        self.sessions: dict[str, SessionInfo] = {}
        self.cursors: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self.apply_faults()

    def apply_faults(self) -> None:
        self.bulk.lock_failure_rate = self.faults.lock_failure_rate
        self.bulk.lock_seed = self.faults.lock_seed
        self.bulk.polls_in_progress = self.faults.bulk_polls_in_progress
        self.bulk.configure(self.faults)
        self.dice.reseed(self.faults.lock_seed)
        self.schema.set_person_accounts(self.faults.person_accounts)
        self.store.set_validation_rules(compile_rules(self.schema, self.faults.validation_rules))

    def new_session(self, user_id: str) -> str:
        token = f"{ORG_ID[:15]}!{secrets.token_urlsafe(48)}"
        self.sessions[token] = SessionInfo(user_id, time.time())
        return token


class ApiError(Exception):
    """An HTTP error with Salesforce's JSON body."""

    def __init__(self, status: int, errors: list[dict[str, Any]] | dict[str, Any]) -> None:
        super().__init__(str(errors))
        self.status = status
        self.errors = errors


def _error(status: int, code: str, message: str, fields: list[str] | None = None) -> ApiError:
    return ApiError(status, [{"message": message, "errorCode": code, "fields": fields or []}])


@dataclass
class Ctx:
    """The caller of one API request."""

    state: EmulatorState
    user_id: str
    version: str


def _state(request: Request) -> EmulatorState:
    return request.app.state.emulator


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() in ("bearer", "oauth") and token else None


async def api_call(request: Request, version: str) -> Ctx:  # ruff: ignore[unused-async]
    """Auth, daily limit, injected faults and the per-endpoint call counter, in that order."""
    state = _state(request)
    if version not in VERSIONS:
        raise _error(404, "NOT_FOUND", "The requested resource does not exist")
    session = state.sessions.get(_bearer(request) or "")
    if session is None or session.expired:
        raise _error(401, "INVALID_SESSION_ID", "Session expired or invalid")
    faults = state.faults
    if state.usage.daily_used >= state.usage.limit(faults):
        raise _error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")
    expire_after = faults.session_expire_after_calls
    if expire_after is not None and session.calls >= expire_after:
        session.expired = True
        raise _error(401, "INVALID_SESSION_ID", "Session expired or invalid")
    session.calls += 1
    route = request.scope.get("route")
    path = str(getattr(route, "path", request.url.path)).rstrip("/")
    state.usage.count(f"{request.method} {path}")
    if faults.http_5xx_count > 0 or state.dice.roll(faults.http_5xx_rate):
        faults.http_5xx_count = max(0, faults.http_5xx_count - 1)
        raise _server_error(faults.http_5xx_status)
    return Ctx(state, session.user_id, version)


def _server_error(status: int) -> ApiError:
    if status == 503:
        return _error(503, "SERVER_UNAVAILABLE", "Server is temporarily unavailable")
    ref = secrets.randbelow(10**9)
    return _error(
        status,
        "UNKNOWN_EXCEPTION",
        f"An unexpected error occurred. Please include this ErrorId if you contact support: {ref}",
    )


Api = Depends(api_call)


class LimitInfoMiddleware:
    """Adds ``Sforce-Limit-Info: api-usage=used/total`` to REST and Bulk responses; saves state."""

    def __init__(self, app: Any, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            # Salesforce answers ``…/successfulResults/`` like ``…/successfulResults``: no
            # redirect (the routes are matched without the trailing slash).
            stripped = path.rstrip("/") or "/"
            scope = {**scope, "path": stripped, "raw_path": stripped.encode()}
        if not scope["path"].startswith("/services/data/"):
            await self.app(scope, receive, send)
            self.state.store.flush()
            return

        async def send_with_header(message: dict) -> None:
            if message["type"] == "http.response.start":
                value = self.state.usage.header(self.state.faults).encode()
                message["headers"] = [*message.get("headers", []), (b"sforce-limit-info", value)]
            await send(message)

        await self.app(scope, receive, send_with_header)
        self.state.store.flush()


# ---------------------------------------------------------------------------------------------
# helpers


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw or b"null")
    except ValueError as exc:
        raise _error(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}") from None


def _sobject(ctx: Ctx, name: str) -> SObject:
    obj = ctx.state.schema.get(name)
    if obj is None:
        raise _error(404, "NOT_FOUND", "The requested resource does not exist")
    return obj


def _record_view(ctx: Ctx, obj: SObject, record: dict[str, Any], fields: str | None) -> dict:
    url = f"/services/data/v{ctx.version}/sobjects/{obj.name}/{record['Id']}"
    out: dict[str, Any] = {"attributes": {"type": obj.name, "url": url}}
    names = [f.strip() for f in fields.split(",")] if fields else list(obj.fields)
    for name in names:
        field_ = obj.field(name)
        if field_ is None:
            raise _error(400, "INVALID_FIELD", f"No such column '{name}' on entity '{obj.name}'")
        out[field_.name] = record.get(field_.name)
    return out


SOAP_TYPES = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "int": "xsd:int",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
}
"""describe's soapType per field type (every other type is xsd:string)."""


def _field_describe(f: Field) -> dict[str, Any]:
    return {
        "name": f.name,
        "label": f.label,
        "type": f.type,
        "soapType": SOAP_TYPES.get(f.type, "xsd:string"),
        "length": f.length or 0,
        "precision": f.precision or 0,
        "scale": f.scale or 0,
        "nillable": not f.required and f.type != "boolean" and f.name != "Id",
        "createable": f.createable,
        "updateable": f.updateable,
        "externalId": f.external_id,
        "unique": f.unique,
        "caseSensitive": f.case_sensitive,
        "idLookup": f.external_id or f.name == "Id",
        "custom": f.name.endswith("__c"),
        "referenceTo": list(f.reference_to),
        "relationshipName": f.relationship_name,
        "defaultValue": f.default,
        "defaultedOnCreate": f.default is not None,
        "picklistValues": [_picklist_value(v) for v in f.picklist_values],
        "restrictedPicklist": f.restricted_picklist,
        "cascadeDelete": f.cascade_delete,
    }


def _picklist_value(value: PicklistValueSpec) -> dict[str, Any]:
    return {
        "active": value.active,
        "defaultValue": value.default,
        "label": value.label,
        "validFor": None,
        "value": value.value,
    }


def _child_relationships(schema: Schema, obj: SObject) -> list[dict[str, Any]]:
    """describe's childRelationships: each lookup of any object that can point here."""
    return [
        {
            "cascadeDelete": f.cascade_delete,
            "childSObject": child.name,
            "deprecatedAndHidden": False,
            "field": f.name,
            "junctionIdListNames": [],
            "junctionReferenceTo": [],
            "relationshipName": f.child_relationship,
            "restrictedDelete": False,
        }
        for child, f in schema.children(obj.name)
    ]


def _object_urls(version: str, name: str) -> dict[str, str]:
    base = f"/services/data/v{version}/sobjects/{name}"
    return {"sobject": base, "describe": f"{base}/describe", "rowTemplate": f"{base}/{{ID}}"}


def _object_summary(version: str, obj: SObject) -> dict[str, Any]:
    return {
        "name": obj.name,
        "label": obj.label,
        "keyPrefix": obj.key_prefix,
        "custom": obj.custom,
        "createable": True,
        "updateable": True,
        "deletable": True,
        "queryable": True,
        "urls": _object_urls(version, obj.name),
    }


def _describe(version: str, schema: Schema, obj: SObject) -> dict[str, Any]:
    out = _object_summary(version, obj)
    out["fields"] = [_field_describe(f) for f in obj.fields.values()]
    out["childRelationships"] = _child_relationships(schema, obj)
    out["recordTypeInfos"] = (
        [
            {"recordTypeId": rid, "developerName": name, "available": True}
            for rid, name in RECORD_TYPES.items()
            if name != "PersonAccount" or obj.field("IsPersonAccount")
        ]
        if obj.name == "Account"
        else []
    )
    return out


def _save_result(record_id: str | None, error: SfError | None, created: bool | None = None) -> dict:
    result: dict[str, Any] = {
        "id": record_id,
        "success": error is None,
        "errors": [error.collection()] if error else [],
    }
    if created is not None:
        result["created"] = created
    return result


# ---------------------------------------------------------------------------------------------
# routers


def _oauth_router() -> APIRouter:
    router = APIRouter()

    @router.post("/services/oauth2/token")
    async def token(request: Request) -> JSONResponse:
        state = _state(request)
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8")).items()}
        user_id = _authenticate(state, form)
        access_token = state.new_session(user_id)
        instance_url = f"https://{request.headers.get('host', '127.0.0.1')}"
        issued_at = str(int(time.time() * 1000))
        signature = hmac.new(
            state.config.client_secret.encode(),
            f"{instance_url}{issued_at}".encode(),
            hashlib.sha256,
        ).digest()
        return JSONResponse(
            {
                "access_token": access_token,
                "instance_url": instance_url,
                "id": f"{instance_url}/id/{ORG_ID}/{user_id}",
                "token_type": "Bearer",
                "issued_at": issued_at,
                "signature": base64.b64encode(signature).decode(),
                "scope": "api",
            }
        )

    @router.post("/services/oauth2/revoke")
    async def revoke(request: Request) -> Response:
        state = _state(request)
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8")).items()}
        state.sessions.pop(form.get("token", ""), None)
        return Response(status_code=200)

    return router


def _authenticate(state: EmulatorState, form: dict[str, str]) -> str:
    config = state.config
    grant = form.get("grant_type")
    client_ok = secrets.compare_digest(form.get("client_id", ""), config.client_id) and (
        secrets.compare_digest(form.get("client_secret", ""), config.client_secret)
    )
    if grant == "client_credentials":
        if not client_ok:
            raise ApiError(
                400, {"error": "invalid_client", "error_description": "invalid client credentials"}
            )
        return state.store.default_user_id
    if grant == "password":
        if not client_ok:
            raise ApiError(
                400,
                {"error": "invalid_client_id", "error_description": "client identifier invalid"},
            )
        user = next(
            (u for u in state.store.scan("User") if u.get("Username") == form.get("username")), None
        )
        password_ok = secrets.compare_digest(form.get("password", ""), config.password)
        if user is None or not password_ok or not user.get("IsActive", True):
            raise ApiError(
                400, {"error": "invalid_grant", "error_description": "authentication failure"}
            )
        return user["Id"]
    raise ApiError(
        400, {"error": "unsupported_grant_type", "error_description": "grant type not supported"}
    )


def _versions_router() -> APIRouter:
    router = APIRouter()

    @router.get("/services/data")
    @router.get("/services/data/")
    async def versions() -> list[dict[str, str]]:
        return [
            {"label": version_label(v), "url": f"/services/data/v{v}", "version": v}
            for v in VERSIONS
        ]

    return router


def _rest_router() -> APIRouter:
    router = APIRouter(prefix="/services/data/v{version}")
    _add_resource_routes(router)
    _add_sobject_routes(router)
    _add_query_routes(router)
    _add_collection_routes(router)
    _add_bulk_routes(router)
    return router


def _add_resource_routes(router: APIRouter) -> None:
    @router.get("")
    @router.get("/")
    async def resources(ctx: Ctx = Api) -> dict[str, str]:
        base = f"/services/data/v{ctx.version}"
        names = ("sobjects", "query", "queryAll", "composite", "jobs", "limits")
        return {name: f"{base}/{name}" for name in names}

    @router.get("/limits")
    @router.get("/limits/")
    async def limits(ctx: Ctx = Api) -> dict[str, Any]:
        state = ctx.state
        max_calls = state.usage.limit(state.faults)
        used = state.usage.daily_used
        jobs = len(state.bulk.query_jobs)
        return {
            "DailyApiRequests": {"Max": max_calls, "Remaining": max(0, max_calls - used)},
            "DailyBulkApiBatches": {"Max": 15000, "Remaining": 15000},
            "DailyBulkV2QueryJobs": {"Max": 10000, "Remaining": 10000 - jobs},
            "DailyBulkV2QueryFileStorageMB": {"Max": 976562, "Remaining": 976562},
            "DataStorageMB": {"Max": 1024, "Remaining": 1024},
        }


def _add_sobject_routes(router: APIRouter) -> None:
    @router.get("/sobjects")
    @router.get("/sobjects/")
    async def describe_global(ctx: Ctx = Api) -> dict[str, Any]:
        objects = [_object_summary(ctx.version, o) for o in ctx.state.schema.objects.values()]
        return {"encoding": "UTF-8", "maxBatchSize": 200, "sobjects": objects}

    @router.get("/sobjects/{sobject}/describe")
    @router.get("/sobjects/{sobject}/describe/")
    async def describe(sobject: str, ctx: Ctx = Api) -> dict[str, Any]:
        return _describe(ctx.version, ctx.state.schema, _sobject(ctx, sobject))

    @router.get("/sobjects/{sobject}")
    @router.get("/sobjects/{sobject}/")
    async def basic_info(sobject: str, ctx: Ctx = Api) -> dict[str, Any]:
        obj = _sobject(ctx, sobject)
        recent = [
            _record_view(ctx, obj, r, "Id") for r in list(ctx.state.store.scan(obj.name))[-5:]
        ]
        return {"objectDescribe": _object_summary(ctx.version, obj), "recentItems": recent}

    @router.post("/sobjects/{sobject}")
    @router.post("/sobjects/{sobject}/")
    async def create(sobject: str, request: Request, ctx: Ctx = Api) -> JSONResponse:
        obj = _sobject(ctx, sobject)
        body = await _json_body(request)
        if not isinstance(body, dict):
            raise _error(400, "JSON_PARSER_ERROR", "Expected a JSON object")
        if any(k.lower() == "id" for k in body):
            raise _error(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                "cannot specify Id in an insert call",
                ["Id"],
            )
        record_id = ctx.state.store.insert(obj.name, body, ctx.user_id)
        return JSONResponse({"id": record_id, "success": True, "errors": []}, status_code=201)

    @router.get("/sobjects/{sobject}/{record_id}")
    async def retrieve(
        sobject: str, record_id: str, ctx: Ctx = Api, fields: str | None = None
    ) -> dict:
        obj = _sobject(ctx, sobject)
        record = ctx.state.store.get(obj.name, record_id)
        if record is None:
            raise _error(404, "NOT_FOUND", "The requested resource does not exist")
        return _record_view(ctx, obj, record, fields)

    @router.patch("/sobjects/{sobject}/{record_id}")
    async def update(sobject: str, record_id: str, request: Request, ctx: Ctx = Api) -> Response:
        obj = _sobject(ctx, sobject)
        body = await _json_body(request)
        if ctx.state.store.get(obj.name, record_id) is None:
            raise _error(404, "NOT_FOUND", "The requested resource does not exist")
        ctx.state.store.update(obj.name, record_id, body, ctx.user_id)
        return Response(status_code=204)

    @router.delete("/sobjects/{sobject}/{record_id}")
    async def delete(sobject: str, record_id: str, ctx: Ctx = Api) -> Response:
        obj = _sobject(ctx, sobject)
        if ctx.state.store.get(obj.name, record_id) is None:
            raise _error(404, "NOT_FOUND", "The requested resource does not exist")
        ctx.state.store.delete(obj.name, record_id)
        return Response(status_code=204)

    @router.get("/sobjects/{sobject}/{field_name}/{value}")
    async def retrieve_by_external(
        sobject: str, field_name: str, value: str, ctx: Ctx = Api
    ) -> Any:
        obj, ids = _external_matches(ctx, sobject, field_name, value)
        if not ids:
            raise _error(404, "NOT_FOUND", "The requested resource does not exist")
        if len(ids) > 1:
            return JSONResponse(_match_urls(ctx, obj, ids), status_code=300)
        return _record_view(ctx, obj, ctx.state.store.get(obj.name, ids[0]) or {}, None)

    @router.patch("/sobjects/{sobject}/{field_name}/{value}")
    async def upsert(
        sobject: str, field_name: str, value: str, request: Request, ctx: Ctx = Api
    ) -> Any:
        obj = _sobject(ctx, sobject)
        body = await _json_body(request)
        store = ctx.state.store
        if _update_only(request, ctx.version):
            _, ids = _external_matches(ctx, sobject, field_name, value)
            if not ids:
                raise _error(404, "NOT_FOUND", "The requested resource does not exist")
        try:
            record_id, created = store.upsert(obj.name, field_name, value, body, ctx.user_id)
        except MultipleMatches as exc:
            return JSONResponse(_match_urls(ctx, obj, exc.ids), status_code=300)
        return _upsert_answer(ctx.version, record_id, created)

    @router.delete("/sobjects/{sobject}/{field_name}/{value}")
    async def delete_by_external(sobject: str, field_name: str, value: str, ctx: Ctx = Api) -> Any:
        obj, ids = _external_matches(ctx, sobject, field_name, value)
        if not ids:
            raise _error(404, "NOT_FOUND", "The requested resource does not exist")
        if len(ids) > 1:
            return JSONResponse(_match_urls(ctx, obj, ids), status_code=300)
        ctx.state.store.delete(obj.name, ids[0])
        return Response(status_code=204)


def _update_only(request: Request, version: str) -> bool:
    """``?updateOnly=true`` (API 61.0 and later): an upsert that must not create a record."""
    flag = request.query_params.get("updateOnly", "")
    return flag.lower() == "true" and float(version) >= UPDATE_ONLY_SINCE


def _upsert_answer(version: str, record_id: str, created: bool) -> Response:
    """201 on create, 200 on update; before API 46.0 no ``created`` and a 204 on update."""
    if float(version) < UPSERT_RESULT_SINCE:
        if not created:
            return Response(status_code=204)
        return JSONResponse({"id": record_id, "success": True, "errors": []}, status_code=201)
    result = {"id": record_id, "success": True, "errors": [], "created": created}
    return JSONResponse(result, status_code=201 if created else 200)


def _external_matches(ctx: Ctx, sobject: str, field_name: str, value: str) -> tuple[SObject, list]:
    obj = _sobject(ctx, sobject)
    field_ = ctx.state.store.external_field(obj, field_name)
    return obj, ctx.state.store.find_external(obj.name, field_, value)


def _match_urls(ctx: Ctx, obj: SObject, ids: list[str]) -> list[str]:
    return [f"/services/data/v{ctx.version}/sobjects/{obj.name}/{i}" for i in ids]


def _add_query_routes(router: APIRouter) -> None:
    @router.get("/query")
    @router.get("/query/")
    @router.get("/queryAll")
    @router.get("/queryAll/")
    async def query(request: Request, q: str, ctx: Ctx = Api) -> dict[str, Any]:
        parsed = parse(q)
        result = Evaluator(ctx.state.schema, ctx.state.store, ctx.version).run(parsed)
        batch = _batch_size(request)
        if parsed.count_only:
            return {"totalSize": result.total_size, "done": True, "records": []}
        return _query_page(ctx, result.records, 0, batch, result.total_size)

    @router.get("/query/{locator}")
    @router.get("/queryAll/{locator}")
    async def query_more(request: Request, locator: str, ctx: Ctx = Api) -> dict[str, Any]:
        cursor_id, _, position = locator.rpartition("-")
        records = ctx.state.cursors.get(cursor_id)
        if records is None or not position.isdigit():
            raise _error(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return _query_page(
            ctx, records, int(position), _batch_size(request), len(records), cursor_id
        )


def _batch_size(request: Request) -> int:
    options = request.headers.get("sforce-query-options", "")
    for part in options.split(","):
        name, _, value = part.strip().partition("=")
        if name.lower() == "batchsize" and value.isdigit():
            return max(200, min(QUERY_BATCH, int(value)))
    return QUERY_BATCH


def _query_page(
    ctx: Ctx, records: list[dict], start: int, size: int, total: int, cursor_id: str | None = None
) -> dict[str, Any]:
    page = records[start : start + size]
    end = start + len(page)
    out: dict[str, Any] = {"totalSize": total, "done": end >= len(records), "records": page}
    if end < len(records):
        cursors = ctx.state.cursors
        if cursor_id is None:
            cursor_id = ctx.state.store.ids.new_id("01g")[:15]
            cursors[cursor_id] = records
            while len(cursors) > 200:
                cursors.popitem(last=False)
        out["nextRecordsUrl"] = f"/services/data/v{ctx.version}/query/{cursor_id}-{end}"
    elif cursor_id is not None:
        ctx.state.cursors.pop(cursor_id, None)
    return out


def _add_collection_routes(router: APIRouter) -> None:
    @router.post("/composite/sobjects")
    async def create_many(request: Request, ctx: Ctx = Api) -> list[dict]:
        body = await _json_body(request)
        records, all_or_none = _collection_body(body)

        def create_one(record: dict[str, Any]) -> tuple[str | None, bool | None]:
            obj = _collection_type(ctx, record)
            if any(k.lower() == "id" for k in record):
                raise RecordError(
                    SfError("INVALID_FIELD", "cannot specify Id in an insert call", ("Id",))
                )
            values = {k: v for k, v in record.items() if k != "attributes"}
            return ctx.state.store.insert(obj.name, values, ctx.user_id), None

        return _run_collection(ctx, records, all_or_none, create_one)

    @router.patch("/composite/sobjects")
    async def update_many(request: Request, ctx: Ctx = Api) -> list[dict]:
        body = await _json_body(request)
        records, all_or_none = _collection_body(body)

        def update_one(record: dict[str, Any]) -> tuple[str | None, bool | None]:
            obj = _collection_type(ctx, record)
            values = {k: v for k, v in record.items() if k not in ("attributes", "id", "Id")}
            record_id = str(record.get("id") or record.get("Id") or "")
            ctx.state.store.update(obj.name, record_id, values, ctx.user_id)
            return ctx.state.store.get(obj.name, record_id)["Id"], None  # type: ignore[index]

        return _run_collection(ctx, records, all_or_none, update_one)

    @router.patch("/composite/sobjects/{sobject}/{field_name}")
    async def upsert_many(sobject: str, field_name: str, request: Request, ctx: Ctx = Api) -> Any:
        obj = _sobject(ctx, sobject)
        body = await _json_body(request)
        records, all_or_none = _collection_body(body)
        ctx.state.store.external_field(obj, field_name)

        def upsert_one(record: dict[str, Any]) -> tuple[str | None, bool | None]:
            values = {k: v for k, v in record.items() if k != "attributes"}
            key = next((v for k, v in values.items() if k.lower() == field_name.lower()), None)
            values = {k: v for k, v in values.items() if k.lower() != field_name.lower()}
            try:
                return ctx.state.store.upsert(obj.name, field_name, key, values, ctx.user_id)
            except MultipleMatches as exc:
                raise RecordError(
                    SfError("DUPLICATE_EXTERNAL_ID", f"more than one record found: {exc.ids}")
                ) from None

        return _run_collection(ctx, records, all_or_none, upsert_one, upsert=True)

    @router.delete("/composite/sobjects")
    async def delete_many(ids: str, ctx: Ctx = Api, allOrNone: bool = False) -> list[dict]:
        def delete_one(record_id: str) -> tuple[str | None, bool | None]:
            found = ctx.state.store.lookup(record_id)
            if found is None:
                raise RecordError(SfError("ENTITY_IS_DELETED", "entity is deleted"))
            ctx.state.store.delete(found[0], record_id)
            return found[1]["Id"], None

        id_list = [i for i in ids.split(",") if i]
        if len(id_list) > COLLECTION_LIMIT:
            raise _too_many()
        return _run_collection(ctx, id_list, allOrNone, delete_one)

    @router.get("/composite/sobjects/{sobject}")
    async def retrieve_many(sobject: str, ids: str, fields: str, ctx: Ctx = Api) -> list:
        return _retrieve_many(ctx, sobject, [i for i in ids.split(",") if i], fields)

    @router.post("/composite/sobjects/{sobject}")
    async def retrieve_many_by_post(sobject: str, request: Request, ctx: Ctx = Api) -> list:
        """Retrieve with ``{"ids": [...], "fields": [...]}`` (up to 2,000 ids)."""
        body = await _json_body(request)
        ids = body.get("ids") if isinstance(body, dict) else None
        fields = body.get("fields") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not isinstance(fields, list) or not fields:
            raise _error(400, "JSON_PARSER_ERROR", "Expected an object with ids and fields arrays")
        if len(ids) > RETRIEVE_POST_LIMIT:
            raise _error(
                400,
                "EXCEEDED_ID_LIMIT",
                f"cannot retrieve more than {RETRIEVE_POST_LIMIT} records in one request",
            )
        return _retrieve_many(ctx, sobject, [str(i) for i in ids], ",".join(map(str, fields)))


def _retrieve_many(ctx: Ctx, sobject: str, ids: list[str], fields: str) -> list:
    """Collection retrieve: one view per id, null where no such record."""
    obj = _sobject(ctx, sobject)
    out = []
    for record_id in ids:
        record = ctx.state.store.get(obj.name, record_id)
        out.append(_record_view(ctx, obj, record, fields) if record else None)
    if all(r is None for r in out):
        _record_view(ctx, obj, {"Id": ""}, fields)  # an unknown field is an error all the same
    return out


def _too_many() -> ApiError:
    return _error(
        400,
        "EXCEEDED_ID_LIMIT",
        f"record limit reached. cannot submit more than {COLLECTION_LIMIT} records into this call",
    )


def _collection_body(body: Any) -> tuple[list[dict[str, Any]], bool]:
    if not isinstance(body, dict) or not isinstance(body.get("records"), list):
        raise _error(400, "JSON_PARSER_ERROR", "Expected an object with a records array")
    if len(body["records"]) > COLLECTION_LIMIT:
        raise _too_many()
    return body["records"], bool(body.get("allOrNone", False))


def _collection_type(ctx: Ctx, record: dict[str, Any]) -> SObject:
    name = (record.get("attributes") or {}).get("type")
    obj = ctx.state.schema.get(name) if isinstance(name, str) else None
    if obj is None:
        raise RecordError(SfError("INVALID_TYPE", "Must specify a valid type in attributes"))
    return obj


def _run_collection(
    ctx: Ctx, items: list[Any], all_or_none: bool, action: Any, *, upsert: bool = False
) -> list[dict]:
    """Run one action per item; with allOrNone, one failure rolls every change back.

    Upsert results always carry ``created``: failed (and rolled back) rows say ``false``.
    """
    failed_created = False if upsert else None
    store = ctx.state.store
    store.begin()
    results: list[tuple[str | None, SfError | None, bool | None]] = []
    for item in items:
        try:
            record_id, created = action(item)
            results.append((record_id, None, created))
        except RecordError as exc:
            results.append((None, exc.error, failed_created))
    if all_or_none and any(err for _, err, _ in results):
        store.rollback()
        rolled_back = SfError(
            "ALL_OR_NONE_OPERATION_ROLLED_BACK",
            "Record rolled back because not all records were valid and the request was using "
            "AllOrNone header",
        )
        results = [(None, err or rolled_back, failed_created) for _, err, _ in results]
    else:
        store.commit()
    return [_save_result(rid, err, created) for rid, err, created in results]


def _add_bulk_routes(router: APIRouter) -> None:
    @router.post("/jobs/ingest")
    @router.post("/jobs/ingest/")
    async def create_ingest(request: Request, ctx: Ctx = Api) -> dict[str, Any]:
        body = await _json_body(request)
        return ctx.state.bulk.create_ingest(body or {}, ctx.user_id, ctx.version).info()

    @router.get("/jobs/ingest")
    @router.get("/jobs/ingest/")
    async def list_ingest(
        ctx: Ctx = Api,
        jobType: str | None = None,
        queryLocator: str | None = None,
        isPkChunkingEnabled: bool | None = None,
        concurrencyMode: str | None = None,
    ) -> dict[str, Any]:
        return ctx.state.bulk.list_ingest(
            ctx.version, jobType, queryLocator, isPkChunkingEnabled, concurrencyMode
        )

    @router.get("/jobs/ingest/{job_id}")
    async def ingest_info(job_id: str, ctx: Ctx = Api) -> dict[str, Any]:
        return ctx.state.bulk.poll(job_id).info()

    @router.patch("/jobs/ingest/{job_id}")
    async def ingest_state(job_id: str, request: Request, ctx: Ctx = Api) -> dict[str, Any]:
        body = await _json_body(request)
        return ctx.state.bulk.set_state(job_id, (body or {}).get("state", "")).info()

    @router.delete("/jobs/ingest/{job_id}")
    async def ingest_delete(job_id: str, ctx: Ctx = Api) -> Response:
        ctx.state.bulk.delete_job(job_id)
        return Response(status_code=204)

    @router.put("/jobs/ingest/{job_id}/batches")
    async def upload(job_id: str, request: Request, ctx: Ctx = Api) -> Response:
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith("text/csv"):
            raise _error(400, "INVALIDCONTENTTYPE", f"Unsupported content type: {content_type}")
        ctx.state.bulk.upload(job_id, await request.body())
        return Response(status_code=201)

    @router.get("/jobs/ingest/{job_id}/{kind}")
    async def ingest_results(job_id: str, kind: str, ctx: Ctx = Api) -> Response:
        names = {
            "successfulresults": "successfulResults",
            "failedresults": "failedResults",
            "unprocessedrecords": "unprocessedrecords",
        }
        if kind.lower() not in names:
            raise _error(404, "NOT_FOUND", "The requested resource does not exist")
        job = ctx.state.bulk.results_job(job_id)
        text = ctx.state.bulk.results_csv(job, names[kind.lower()])
        return Response(text.encode("utf-8"), media_type=CSV_TYPE)

    @router.post("/jobs/query")
    @router.post("/jobs/query/")
    async def create_query(request: Request, ctx: Ctx = Api) -> dict[str, Any]:
        body = await _json_body(request)
        return ctx.state.bulk.create_query(body or {}, ctx.user_id, ctx.version).info()

    @router.get("/jobs/query/{job_id}")
    async def query_info(job_id: str, ctx: Ctx = Api) -> dict[str, Any]:
        return ctx.state.bulk.poll_query(job_id).info()

    @router.patch("/jobs/query/{job_id}")
    async def query_state(job_id: str, request: Request, ctx: Ctx = Api) -> dict[str, Any]:
        body = await _json_body(request)
        if (body or {}).get("state") != "Aborted":
            raise _error(400, "INVALIDJOBSTATE", "Only Aborted can be set on a query job")
        return ctx.state.bulk.abort_query(job_id).info()

    @router.delete("/jobs/query/{job_id}")
    async def query_delete(job_id: str, ctx: Ctx = Api) -> Response:
        ctx.state.bulk.query_job(job_id)
        del ctx.state.bulk.query_jobs[job_id]
        return Response(status_code=204)

    @router.get("/jobs/query/{job_id}/results")
    async def query_results(
        job_id: str,
        ctx: Ctx = Api,
        locator: str | None = None,
        maxRecords: int | None = None,
    ) -> Response:
        job = ctx.state.bulk.query_job(job_id)
        text, next_locator, count = ctx.state.bulk.query_page(job, locator, maxRecords)
        headers = {"Sforce-Locator": next_locator, "Sforce-NumberOfRecords": str(count)}
        return Response(text.encode("utf-8"), media_type=CSV_TYPE, headers=headers)


def _admin_router() -> APIRouter:
    router = APIRouter(prefix="/__emulator__", dependencies=[Depends(_local_only)])

    @router.get("/stats")
    async def stats(request: Request) -> dict[str, Any]:
        state = _state(request)
        out = state.usage.as_dict(state.faults)
        out["records"] = {name: state.store.count(name) for name in state.schema.objects}
        out["bulk_jobs"] = {
            "ingest": len(state.bulk.ingest_jobs),
            "query": len(state.bulk.query_jobs),
        }
        out["bulk_work_seconds"] = state.bulk.work_seconds
        out["sessions"] = len(state.sessions)
        return out

    @router.post("/reset")
    async def reset(request: Request) -> dict[str, Any]:
        state = _state(request)
        body = await _json_body(request) or {}
        if body.get("records", True):
            state.store.reset()
            state.bulk.reset()
            state.cursors.clear()
        if body.get("counters", True):
            state.usage.reset()
        if body.get("faults", True):
            state.faults = replace(state.initial_faults)
            state.apply_faults()
        if body.get("sessions", False):
            state.sessions.clear()
        return {"reset": True}

    @router.get("/faults")
    async def get_faults(request: Request) -> dict[str, Any]:
        return _state(request).faults.as_dict()

    @router.put("/faults")
    async def put_faults(request: Request) -> dict[str, Any]:
        state = _state(request)
        body = await _json_body(request) or {}
        faults = replace(state.faults)
        try:
            faults.update(body)
            compile_rules(state.schema, faults.validation_rules)
        except KeyError as exc:
            raise _error(400, "INVALID_FIELD", f"unknown fault: {exc.args[0]}") from None
        except ValueError as exc:
            raise _error(400, "INVALID_FIELD", str(exc)) from None
        state.faults = faults
        state.apply_faults()
        return state.faults.as_dict()

    @router.post("/sessions/expire")
    async def expire_sessions(request: Request) -> dict[str, int]:
        state = _state(request)
        for session in state.sessions.values():
            session.expired = True
        return {"expired": len(state.sessions)}

    @router.post("/convert-lead")
    async def convert(request: Request) -> dict[str, Any]:
        state = _state(request)
        body = await _json_body(request) or {}
        result = convert_lead(
            state.store,
            str(body.get("leadId", "")),
            person_account=bool(body.get("personAccount", False)),
            account_id=body.get("accountId"),
            contact_id=body.get("contactId"),
            converted_status=body.get("convertedStatus") or "Closed - Converted",
        )
        return result.as_dict()

    @router.post("/rep-click")
    async def click(request: Request) -> dict[str, Any]:
        """A rep links (parentId, linked true) or unticks a LineWorks__c record as userId."""
        state = _state(request)
        body = await _json_body(request) or {}
        return rep_click(
            state.store,
            str(body.get("linkKey", "")),
            linked=bool(body.get("linked", True)),
            user_id=str(body.get("userId", "")),
            parent_id=body.get("parentId"),
        )

    @router.post("/records/{sobject}")
    async def create_record(sobject: str, request: Request) -> JSONResponse:
        state = _state(request)
        obj = state.schema.get(sobject)
        if obj is None:
            raise _error(404, "NOT_FOUND", f"unknown object {sobject}")
        body = await _json_body(request) or {}
        if isinstance(body, list):
            ids = [state.store.insert(obj.name, values, None) for values in body]
            return JSONResponse({"ids": ids, "success": True}, status_code=201)
        record_id = state.store.insert(obj.name, body, None)
        return JSONResponse({"id": record_id, "success": True, "errors": []}, status_code=201)

    @router.get("/records/{sobject}")
    async def list_records(sobject: str, request: Request) -> list[dict[str, Any]]:
        state = _state(request)
        obj = state.schema.get(sobject)
        if obj is None:
            raise _error(404, "NOT_FOUND", f"unknown object {sobject}")
        return list(state.store.scan(obj.name))

    @router.get("/info")
    async def info(request: Request) -> dict[str, Any]:
        state = _state(request)
        return {
            "client_id": state.config.client_id,
            "default_user_id": state.store.default_user_id,
            "api_versions": [VERSIONS[0], VERSIONS[-1]],
            "person_account_record_type_id": next(iter(RECORD_TYPES)),
            "objects": {n: o.key_prefix for n, o in state.schema.objects.items()},
        }

    return router


async def _local_only(request: Request) -> None:  # ruff: ignore[unused-async]
    host = request.client.host if request.client else ""
    if host not in ("127.0.0.1", "::1", "localhost", "testclient"):
        raise _error(403, "FORBIDDEN", "admin endpoints answer 127.0.0.1 only")


# ---------------------------------------------------------------------------------------------
# app


def create_app(state: EmulatorState | None = None) -> FastAPI:
    """The emulator as an ASGI app (state in memory unless the state says otherwise)."""
    state = state or EmulatorState()
    app = FastAPI(
        title="talklog Salesforce emulator",
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
    )
    app.state.emulator = state
    app.include_router(_oauth_router())
    app.include_router(_versions_router())
    app.include_router(_rest_router())
    app.include_router(_admin_router())
    _add_error_handlers(app)
    app.add_middleware(LimitInfoMiddleware, state=state)
    return app


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:  # ruff: ignore[unused-async]
        """Unknown routes and methods answer Salesforce's error array, not ``{"detail": …}``."""
        if exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            message = f"HTTP Method '{request.method}' not allowed. Allowed are {allowed}"
            body = [{"errorCode": "METHOD_NOT_ALLOWED", "message": message}]
            return JSONResponse(body, status_code=405, headers=exc.headers)
        if exc.status_code == 404:
            body = [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
            return JSONResponse(body, status_code=404)
        return JSONResponse(
            [{"errorCode": "UNKNOWN_EXCEPTION", "message": str(exc.detail)}],
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:  # ruff: ignore[unused-async]
        return JSONResponse(exc.errors, status_code=exc.status)

    @app.exception_handler(RecordError)
    async def record_error(request: Request, exc: RecordError) -> JSONResponse:  # ruff: ignore[unused-async]
        _state(request).store.flush()
        status = 404 if exc.error.code == "NOT_FOUND" else 400
        return JSONResponse([exc.error.rest()], status_code=status)

    @app.exception_handler(SoqlError)
    async def soql_error(request: Request, exc: SoqlError) -> JSONResponse:  # ruff: ignore[unused-async]
        return JSONResponse([{"message": exc.message, "errorCode": exc.code}], status_code=400)

    @app.exception_handler(BulkError)
    async def bulk_error(request: Request, exc: BulkError) -> JSONResponse:  # ruff: ignore[unused-async]
        return JSONResponse([exc.error.rest()], status_code=exc.status)
