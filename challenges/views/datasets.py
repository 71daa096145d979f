"""Dataset pages: the organiser's upload page and the public sample downloads."""
from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, send_file, url_for
from flask_babel import gettext
from flask_login import current_user

from challenges import challenges, datasets
from challenges.forms import DatasetForm
from challenges.views.blueprints import bp
from challenges.views.helpers import form_error, organised_challenge, visible_challenge
from hub.errors import DomainError
from hub.models import Role
from hub.web import db, role_required


@bp.route("/challenges/<slug>/datasets", methods=["GET", "POST"])
@role_required(Role.GOV)
def datasets_page(slug: str):
    challenge = organised_challenge(slug)
    form = DatasetForm()
    status = 200
    if form.validate_on_submit():
        files = request.files
        if not files.get("inputs") or not files.get("truth"):
            form.inputs.errors = [gettext("Choose the test inputs and the truth CSV files.")]
            status = 400
        else:
            def opt(name: str):  # type: ignore[no-untyped-def]
                f = files.get(name)
                return f.stream if f and f.filename else None
            try:
                datasets.upload(db(), current_user, challenge, form.split.data, inputs_csv=files["inputs"].stream,
                                truth_csv=files["truth"].stream, files_zip=opt("files"),
                                sample_inputs_csv=opt("sample_inputs"), sample_truth_csv=opt("sample_truth"),
                                data_dir=current_app.config["DATA_DIR"],
                                max_bytes=current_app.config["MAX_DATASET_BYTES"])
            except DomainError as err:
                db().rollback()
                form_error(form, err)
                status = 400
            else:
                flash(gettext("The data was stored and checksummed."), "success")
                return redirect(url_for("challenges.datasets_page", slug=slug))
    elif form.is_submitted():
        status = 400
    return render_template("challenges/datasets.html", form=form, challenge=challenge,
                           rows=datasets.of_challenge(db(), challenge.id),
                           locked=challenges.locked_since(db(), challenge)), status


@bp.get("/challenges/<slug>/samples/<split>.zip")
def sample(slug: str, split: str):
    challenge = visible_challenge(slug)
    path = datasets.sample_file(db(), challenge, split)
    return send_file(path, mimetype="application/zip", as_attachment=True,
                     download_name=f"{challenge.slug}-{split}-sample.zip")

