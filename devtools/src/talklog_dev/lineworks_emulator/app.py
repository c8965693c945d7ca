"""The LINE WORKS emulator's HTTP API (FastAPI): token, /users, /contacts, the download.

Routes: ``POST /oauth2/v2.0/token``, ``GET /v1.0/users``, ``GET /v1.0/contacts``,
``GET /v1.0/monitoring/message-contents/download`` (302 to ``/files/{id}`` on the other
local name, 127.0.0.1 <-> localhost, so that a client must carry the token across hosts
itself), and the admin API under ``/__emulator__`` (stats, faults, reset, expire-tokens,
rename, talks, contact-name). Errors are ``{"code", "description"}`` (token endpoint: ``{"error",
"error_description"}``).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from talklog_dev.lineworks_emulator import export
from talklog_dev.lineworks_emulator.state import AssertionRefused, Download, EmulatorState
from talklog_dev.lineworks_emulator.talks import TalkRefused

API = "/v1.0"
MAX_PERIOD = dt.timedelta(days=31)
MAX_CONTACTS_PERIOD = dt.timedelta(days=7)
LANGUAGES = ("ko_KR", "ja_JP", "zh_CN", "zh_TW", "en_US")
BOT_FILTERS = ("include", "exclude", "only")
CHUNK = 64 * 1024


class ApiError(Exception):
    def __init__(self, status: int, code: str, description: str) -> None:
        super().__init__(description)
        self.status, self.code, self.description = status, code, description


def _error(status: int, code: str, description: str) -> JSONResponse:
    return JSONResponse({"code": code, "description": description}, status_code=status)


def _time(params: dict[str, str], name: str, required: bool = True) -> dt.datetime | None:
    value = params.get(name)
    if value is None:
        if required:
            raise ApiError(400, "INVALID_PARAMETER", f"{name} is required")
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None or "T" not in value:
        raise ApiError(400, "INVALID_PARAMETER", f"{name} must be YYYY-MM-DDThh:mm:ssTZD")
    return parsed


def _cursor_of(params: dict[str, str], query: str) -> int:
    cursor = params.get("cursor")
    if not cursor:
        return 0
    try:
        data = json.loads(base64.b64decode(cursor, validate=True))
    except ValueError:
        raise ApiError(400, "INVALID_PARAMETER", "invalid cursor") from None
    if data.get("q") != query:
        raise ApiError(400, "INVALID_PARAMETER", "the cursor belongs to another query")
    return int(data["o"])


def _page(items: list[dict], params: dict[str, str], key: str, limit: int) -> dict[str, Any]:
    try:
        count = int(params.get("count", "100"))
    except ValueError:
        raise ApiError(400, "INVALID_PARAMETER", "count must be an integer") from None
    if not 1 <= count <= limit:
        raise ApiError(400, "INVALID_PARAMETER", f"count must be within 1..{limit}")
    query = json.dumps({k: v for k, v in sorted(params.items()) if k not in ("cursor", "count")})
    offset = _cursor_of(params, query)
    chunk = items[offset : offset + count]
    following = offset + count
    cursor = None
    if following < len(items):
        raw = json.dumps({"o": following, "q": query, "n": secrets.token_hex(4)}).encode()
        cursor = base64.b64encode(raw).decode()  # standard base64: + / = need URL-encoding
    return {key: chunk, "responseMetaData": {"nextCursor": cursor}}


def create_app(state: EmulatorState) -> FastAPI:
    app = FastAPI(title="talklog LINE WORKS emulator", docs_url=None, redoc_url=None)

    @app.exception_handler(ApiError)
    def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.description)

    @app.exception_handler(StarletteHTTPException)
    def not_found(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "NOT_FOUND" if exc.status_code == 404 else "METHOD_NOT_ALLOWED"
        return _error(exc.status_code, code, str(exc.detail))

    def guard(request: Request, api: str, scope: str, limited: bool = True) -> None:
        """Count the call, then the token, its scope, the rate and injected failures."""
        state.calls[api] += 1
        token = state.token_of(request.headers.get("Authorization"))
        try:
            if token is None:
                raise ApiError(401, "UNAUTHORIZED", "Authentication failed")
            if scope not in token.scopes:
                raise ApiError(403, "FORBIDDEN", f"Not allowed scope: {scope} is required")
            if limited and state.throttled(api):
                raise ApiError(429, "TOO_MANY_REQUESTS", "Too many requests")
            if limited and state.failing():
                raise ApiError(500, "INTERNAL_SERVER_ERROR", "Internal server error")
        except ApiError as error:
            state.refused[f"{api} {error.status}"] += 1
            raise

    @app.post("/oauth2/v2.0/token")
    async def token(request: Request) -> JSONResponse:
        state.calls["token"] += 1
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        try:
            return JSONResponse(state.issue_token(form))
        except AssertionRefused as refused:
            state.refused[f"token {refused.status}"] += 1
            body = {"error": refused.error, "error_description": refused.description}
            return JSONResponse(body, status_code=refused.status)

    @app.get(API + "/users")
    def users(request: Request) -> dict[str, Any]:
        guard(request, "users", "directory.read")
        params = dict(request.query_params)
        return _page(state.world.users, params, "users", 100)

    @app.get(API + "/contacts")
    def contacts(request: Request) -> dict[str, Any]:
        guard(request, "contacts", "contact.read")
        params = dict(request.query_params)
        start, end = _time(params, "startDateTime", False), _time(params, "endDateTime", False)
        items = state.additions.contacts()
        if start is not None or end is not None:
            kind = params.get("searchDateType")
            if kind not in ("CREATED_TIME", "MODIFIED_TIME"):
                raise ApiError(400, "INVALID_PARAMETER", "searchDateType is required")
            first = start or end - MAX_CONTACTS_PERIOD  # type: ignore[operator]
            last = end or first + MAX_CONTACTS_PERIOD
            if last < first or last - first > MAX_CONTACTS_PERIOD:
                raise ApiError(400, "INVALID_PARAMETER", "the period must be within 7 days")
            field = "createdTime" if kind == "CREATED_TIME" else "modifiedTime"
            items = [c for c in items if first <= dt.datetime.fromisoformat(c[field]) <= last]
        return _page(items, params, "contacts", 500)

    @app.get(API + "/monitoring/message-contents/download")
    def download(request: Request) -> Response:
        guard(request, "download", "monitoring.read")
        params = dict(request.query_params)
        start, end = _time(params, "startTime"), _time(params, "endTime")
        if end < start or end - start > MAX_PERIOD:  # type: ignore[operator]
            raise ApiError(400, "INVALID_PARAMETER", "the period must be within 31 days")
        language = params.get("language", "en_US")
        bots = params.get("botMessageFilterType", "include")
        if language not in LANGUAGES or bots not in BOT_FILTERS:
            raise ApiError(400, "INVALID_PARAMETER", "invalid language or botMessageFilterType")
        if language not in export.HEADERS:
            raise ApiError(400, "INVALID_PARAMETER", f"the emulator exports no {language}")
        domain = params.get("domainId")
        if domain is not None and domain != str(state.world.domain_id):
            raise ApiError(403, "FORBIDDEN", "no permission on this domain")
        with state.lock:
            if state.download_running():
                state.refused["download 409"] += 1
                raise ApiError(409, "CONFLICT", "the previous download has not finished")
            file_id = secrets.token_urlsafe(16)
            began = time.perf_counter()
            state.downloads[file_id] = _prepare(state, file_id, start, end, language, bots)  # type: ignore[arg-type]
            state.prepare_seconds += time.perf_counter() - began
            state.busy = file_id
        other = "localhost" if request.url.hostname == "127.0.0.1" else "127.0.0.1"
        location = request.url.replace(hostname=other, path=f"/files/{file_id}", query="")
        return RedirectResponse(str(location), status_code=302)

    @app.get("/files/{file_id}")
    def file(file_id: str, request: Request) -> Response:
        guard(request, "files", "monitoring.read", limited=False)
        with state.lock:
            prepared = state.downloads.get(file_id)
        if prepared is None or prepared.expires_at <= time.time():
            raise ApiError(404, "NOT_FOUND", "the file URL is unknown or has expired")
        headers = {
            "Content-Length": str(prepared.size),
            "Content-Disposition": 'attachment; filename="message_contents.csv"',
        }
        return StreamingResponse(
            _send(state, file_id, prepared), media_type="text/csv; charset=UTF-8", headers=headers
        )

    _admin(app, state)
    return app


def _prepare(
    state: EmulatorState,
    file_id: str,
    start: dt.datetime,
    end: dt.datetime,
    language: str,
    bots: str,
) -> Download:
    """Write the export of the period to a file (and apply the file faults)."""
    faults = state.faults
    path = state.files_dir / f"{file_id}.csv"
    talks = state.additions.merged(state.world.talk_rows(state.renamed), state.renamed)
    rows = export.in_period(talks, start, end, bots)
    records = export.lines(rows, language, faults.header)
    starts: list[int] = []
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        for record in records:
            starts.append(handle.tell())
            handle.write(record)
        size = handle.tell()
        if faults.download_error:  # cut after half the rows, then the error line
            cut = starts[max(1, (len(starts) + 1) // 2)] if len(starts) > 1 else size
            handle.truncate(cut)
            handle.seek(cut)
            handle.write(b"downloadLogs error,an internal error occurred\r\n")
            size = handle.tell()
        elif faults.truncate == "record":  # the last record (or the header) cut in half
            last = starts[-1]
            size = last + (size - last) // 2
            handle.truncate(size)
    send = size // 2 if faults.truncate == "length" else size
    return Download(path, size, send, time.time() + state.config.file_url_lifetime_s)


def _send(state: EmulatorState, file_id: str, prepared: Download) -> Iterator[bytes]:
    """The file in chunks (only `send_bytes` of it); the download ends when all was sent."""
    remaining = prepared.send_bytes
    try:
        with prepared.path.open("rb") as handle:
            while remaining > 0:
                chunk = handle.read(min(CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                yield chunk
    finally:
        state.finish(file_id)


def _admin(app: FastAPI, state: EmulatorState) -> None:
    @app.get("/__emulator__/stats")
    def stats() -> dict[str, Any]:
        return state.stats()

    @app.post("/__emulator__/reset")
    def reset() -> dict[str, bool]:
        state.reset()
        return {"reset": True}

    @app.get("/__emulator__/faults")
    def faults() -> dict[str, Any]:
        return state.faults.__dict__

    @app.put("/__emulator__/faults")
    async def set_faults(request: Request) -> JSONResponse:
        try:
            state.faults.update(await request.json())
        except ValueError as error:
            return _error(400, "INVALID_PARAMETER", str(error))
        return JSONResponse(state.faults.__dict__)

    @app.post("/__emulator__/expire-tokens")
    def expire_tokens() -> dict[str, int]:
        return {"expired": state.expire_tokens()}

    @app.post("/__emulator__/rename")
    async def rename(request: Request) -> dict[str, Any]:
        """A customer renamed themselves on LINE: later downloads show the new name."""
        body = await request.json()
        state.renamed[str(body["id"])] = str(body["name"])
        return {"renamed": dict(state.renamed)}

    @app.post("/__emulator__/talks")
    async def add_talk(request: Request) -> JSONResponse:
        """A text talk in one of the world's rooms at `sentAt` (later downloads have it)."""
        try:
            with state.lock:
                talk = state.additions.add_talk(await request.json())
        except TalkRefused as refused:
            return _error(400, "INVALID_PARAMETER", str(refused))
        added = {"channelId": talk.channel_id, "senderId": talk.sender_id}
        return JSONResponse({**added, "sentAt": talk.sent_at.isoformat()})

    @app.post("/__emulator__/contact-name")
    async def rename_contact(request: Request) -> JSONResponse:
        """A staff member renamed a contact: its `contactName` and `modifiedTime` (now)."""
        now = dt.datetime.now(dt.UTC)
        try:
            with state.lock:
                contact = state.additions.rename_contact(await request.json(), now)
        except TalkRefused as refused:
            return _error(400, "INVALID_PARAMETER", str(refused))
        return JSONResponse(contact)
