"""Submission intake (web form, API) and the operators' page. Views read the request and call services."""
from __future__ import annotations

import io
from typing import IO, Any
from urllib.parse import unquote

from flask import (Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request,
                   url_for)
from flask_babel import gettext
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.sansio.multipart import NEED_DATA, Data, Epilogue, Field, File, MultipartDecoder
from werkzeug.http import parse_options_header

from challenges.models import SubmissionKind
from challenges.api import submission_document, wait_text
from evaluator import jobs, submit
from hub.errors import N_, DomainError
from hub.forms import EmptyForm
from hub.models import Role
from hub.web import db, flash_error, json_error, role_required, translate_error, wants_json

bp = Blueprint("evaluator", __name__)
api = Blueprint("evaluator_api", __name__, url_prefix="/api/v1")

UPLOAD_ENDPOINTS = {"evaluator.submit", "evaluator_api.create_submission"}
RAW_TYPES = {"application/x-tar", "application/octet-stream"}


def _cap_upload(endpoint: str | None, _values: Any) -> None:
    # Runs before any before_request hook reads the body (CSRF reads the form), so an oversized
    # upload is refused by werkzeug before a byte is spooled.
    if endpoint in UPLOAD_ENDPOINTS:
        request.max_content_length = int(current_app.config["MAX_IMAGE_BYTES"]) + 1024 * 1024


bp.url_value_preprocessor(_cap_upload)
api.url_value_preprocessor(_cap_upload)


def _settings() -> submit.IntakeSettings:
    return submit.IntakeSettings.from_config(current_app.config)


def _kind(fields: dict[str, Any] | None = None) -> str:
    """A submission or a check run: `?kind=check` on the address, or a `kind` field of the form or JSON body."""
    value = (request.args.get("kind") or (fields or {}).get("kind") or SubmissionKind.SUBMISSION).strip()
    if value not in {k.value for k in SubmissionKind}:
        raise DomainError(N_("Unknown kind of run."), field="kind")
    return value


def _submission_url(sub_id: int) -> str:
    if "challenges.submission" in current_app.view_functions:
        return url_for("challenges.submission", submission_id=sub_id)
    return url_for("evaluator_api.submission_log", submission_id=sub_id)


# ---------------------------------------------------------------- request bodies that stream
class MultipartField(io.RawIOBase):
    """The bytes of one file field of a multipart body, decoded as they arrive (never buffered whole).

    Small form fields before it are collected in `fields`; the body after the file is drained, unread.
    """

    def __init__(self, stream: IO[bytes], boundary: str, name: str, chunk: int = 1 << 20) -> None:
        super().__init__()
        self.stream, self.name, self.chunk = stream, name, chunk
        # The bound is on the decoder's unprocessed buffer: at most one chunk plus a part header.
        self.decoder = MultipartDecoder(boundary.encode(), max_form_memory_size=2 * chunk + 64 * 1024)
        self.fields: dict[str, str] = {}
        self.filename = ""
        self._buf = bytearray()
        self._current: str | None = None
        self._in_file = False
        self._file_done = False
        self._eof = False
        while not self._in_file and not self._file_done and self._pump():
            pass

    def found(self) -> bool:
        return self._in_file or self._file_done

    def _pump(self) -> bool:
        """Feed one chunk and handle its events; False once the body has ended."""
        if self._eof:
            return False
        data = self.stream.read(self.chunk)
        self.decoder.receive_data(data or None)
        if not data:
            self._eof = True
        while True:
            event = self.decoder.next_event()
            if event is NEED_DATA or isinstance(event, Epilogue):
                break
            if isinstance(event, File) and event.name == self.name and not self._file_done:
                self._in_file, self.filename = True, event.filename or ""
            elif isinstance(event, (Field, File)):
                self._current = event.name
                self.fields.setdefault(event.name, "")
            elif isinstance(event, Data):
                if self._in_file:
                    self._buf += event.data
                    if not event.more_data:
                        self._in_file, self._file_done = False, True
                elif self._current is not None and len(self.fields[self._current]) < 4096:
                    self.fields[self._current] += event.data.decode("utf-8", "replace")
        return not self._eof

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        want = self.chunk if size is None or size < 0 else size
        while len(self._buf) < want and (self._in_file or not self._file_done) and self._pump():
            if self._file_done and not self._in_file:
                break
        out = bytes(self._buf[:want])
        del self._buf[:want]
        return out


def _image_stream() -> tuple[IO[bytes] | None, str, dict[str, str]]:
    """(the image bytes as a stream, the file name, other form fields) from a raw or multipart body."""
    mimetype, options = parse_options_header(request.headers.get("Content-Type", ""))
    if mimetype in RAW_TYPES:
        return request.stream, unquote(request.headers.get("X-Filename", "image.tar"))[:200], {}
    if mimetype == "multipart/form-data" and "boundary" in options:
        if request.headers.get("Authorization", "").startswith("Bearer "):
            # Token requests: nothing has read the body yet, so decode it as it streams in.
            part = MultipartField(request.stream, options["boundary"], "image")
            return (part if part.found() else None), part.filename, part.fields
        # Browser form: Flask-WTF's CSRF check parsed the form; werkzeug spooled the file to disk.
        upload = request.files.get("image")
        if upload is not None and upload.filename:
            return upload.stream, upload.filename, request.form.to_dict()
        return None, "", request.form.to_dict()
    return None, "", {}


# ---------------------------------------------------------------- the submit page
@bp.route("/challenges/<slug>/submit", methods=["GET", "POST"], endpoint="submit")
@role_required(Role.TEAM)
def submit_page(slug: str):
    if request.method == "POST":
        try:
            sub = _submit_from_request(slug)
        except DomainError as err:
            if wants_json() or request.headers.get("X-Requested-With") == "XMLHttpRequest":
                return json_error(err.status, err.code, translate_error(err), err.field)
            flash_error(err)
            return _render_submit(slug), err.status
        except RequestEntityTooLarge:
            return _too_large()
        url = _submission_url(sub.id)  # type: ignore[arg-type]
        if request.headers.get("X-Requested-With") == "XMLHttpRequest" or wants_json():
            return jsonify(_submission_json(sub)), 201
        if sub.status == "failed":
            flash(gettext("The image was rejected: %(reason)s", reason=sub.reason), "error")
        elif sub.kind == SubmissionKind.CHECK:
            flash(gettext("Check run started: your image runs on the phase's public sample inputs."), "success")
        else:
            flash(gettext("Submitted. Your image is in the queue."), "success")
        return redirect(url)
    return _render_submit(slug)


def _render_submit(slug: str) -> str:
    try:
        kind = _kind()
    except DomainError:
        kind = SubmissionKind.SUBMISSION
    ctx = submit.context(db(), slug, current_user, kind, _settings().check_runs_per_day, _settings().redis_url)
    return render_template("evaluator/submit.html", ctx=ctx, form=EmptyForm(),
                           check_runs_per_day=_settings().check_runs_per_day,
                           refusal=translate_error(ctx.refusal_error) if ctx.refusal_error else None,
                           wait_text=wait_text(ctx.est_wait_s),
                           max_mb=int(current_app.config["MAX_IMAGE_BYTES"]) // (1024 * 1024),
                           api_url=url_for("evaluator_api.create_submission", slug=slug, _external=True),
                           base_url=request.host_url.rstrip("/"))


def _submit_from_request(slug: str):  # type: ignore[no-untyped-def]
    session = db()
    if request.is_json:
        body = request.get_json(silent=True) or {}
        return submit.submit_registry(session, slug=slug, user=current_user, reference=str(body.get("image", "")),
                                      settings=_settings(), kind=_kind({"kind": str(body.get("kind") or "")}))
    stream, filename, fields = _image_stream()
    kind = _kind(fields)
    if stream is None:
        reference = (fields.get("reference") or "").strip()
        if reference:
            return submit.submit_registry(session, slug=slug, user=current_user, reference=reference,
                                          settings=_settings(), kind=kind)
        raise DomainError(N_("Choose a `docker save` archive to upload, or name an image in the registry."),
                          field="image")
    return submit.submit_upload(session, slug=slug, user=current_user, stream=stream, settings=_settings(),
                                filename=filename, kind=kind)


def _too_large():  # type: ignore[no-untyped-def]
    mb = int(current_app.config["MAX_IMAGE_BYTES"]) // (1024 * 1024)
    message = gettext("The image archive is larger than the limit of %(mb)s MiB.", mb=mb)
    return json_error(413, "too_large", message, "image")


def _submission_json(sub) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return submission_document(sub.id)[0]


# ---------------------------------------------------------------- API
@api.post("/challenges/<slug>/submissions")
@role_required(Role.TEAM)
def create_submission(slug: str):
    """Token auth. Body: multipart field `image` (a `docker save` tar), a raw tar, or JSON {"image": ref}."""
    try:
        sub = _submit_from_request(slug)
    except RequestEntityTooLarge:
        return _too_large()
    body = _submission_json(sub)
    if sub.status == "failed":
        return json_error(422, "image_rejected", gettext("The image was rejected: %(reason)s", reason=sub.reason),
                          "image", submission=body)
    return jsonify(body), 201


@api.get("/submissions/<int:submission_id>/log")
@role_required()
def submission_log(submission_id: int):
    """Live status and log tail, with the visibility of the submission page."""
    return jsonify(submission_document(submission_id, with_log=True)[0])


# ---------------------------------------------------------------- operators
@bp.get("/ops")
@role_required(Role.OPERATOR, Role.ADMIN)
def ops():
    overview = jobs.ops_overview(db(), current_app.config.get("REDIS_URL"))
    return render_template("evaluator/ops.html", o=overview, form=EmptyForm())


@bp.get("/ops/submissions/<int:submission_id>/log")
@role_required(Role.OPERATOR, Role.ADMIN)
def ops_log(submission_id: int):
    """The whole saved log of any run, for operators chasing a failure (runs on hidden data included)."""
    sub = jobs.log_for_operator(db(), submission_id, current_user.id)
    return render_template("evaluator/ops_log.html", sub=sub)


@bp.post("/ops/submissions/<int:submission_id>/<action>")
@role_required(Role.OPERATOR, Role.ADMIN)
def ops_action(submission_id: int, action: str):
    EmptyForm()
    if action not in ("cancel", "rerun"):
        abort(404)
    try:
        if action == "cancel":
            jobs.cancel_submission(db(), current_app.config.get("REDIS_URL"), submission_id, current_user.id)
            flash(gettext("Submission %(id)s was cancelled; its container is stopped.", id=submission_id), "success")
        else:
            jobs.rerun_submission(db(), current_app.config.get("REDIS_URL"), submission_id, current_user.id)
            flash(gettext("Submission %(id)s is queued again.", id=submission_id), "success")
    except DomainError as err:
        flash_error(err)
    return redirect(url_for("evaluator.ops"))
