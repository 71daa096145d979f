"""Datasets per split: test inputs (CSV + optional zip of files) and hidden truth, stored apart, checksummed.

Layout under DATA_DIR:
  datasets/<challenge_id>/<split>/inputs/inputs.csv   (+ inputs/files/… from the zip)  → mounted at /input
  truth/<challenge_id>/<split>/truth.csv                                               → never served or mounted
  samples/<challenge_id>/<split>/sample.zip                                            → public, with its truth
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import secrets
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from sqlmodel import Session, select

from challenges.access import require_organiser
from challenges.challenges import refuse_if_locked
from challenges.models import Challenge, Dataset
from hub import audit
from hub.errors import DomainError, N_, NotFound
from hub.models import User

INPUTS_NAME = "inputs.csv"
TRUTH_NAME = "truth.csv"
SAMPLE_NAME = "sample.zip"
MAX_ZIP_MEMBERS = 20000
SPLIT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")
CHUNK = 1024 * 1024


class _Budget:
    """Bytes left for this upload; every write draws on it, so a size cap holds across all files."""

    def __init__(self, limit: int) -> None:
        self.total = self.left = limit

    def take(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise DomainError(N_("The data is larger than the limit of %(mb)s MB."), field="inputs", code="too_large",
                              mb=_mb(self.total))


def _mb(n: int) -> int:
    return max(1, n // (1024 * 1024))


def _copy(src: BinaryIO, dest: Path, budget: _Budget) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    with dest.open("wb") as out:
        while True:
            chunk = src.read(CHUNK)
            if not chunk:
                break
            budget.take(len(chunk))
            out.write(chunk)


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def tree_sha256(root: Path) -> str:
    """One checksum for a folder: the sorted relative paths and each file's own checksum."""
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + _sha256_file(path).encode() + b"\n")
    return h.hexdigest()


def _read_csv(path: Path, field: str) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            header = list(reader.fieldnames or [])
    except (UnicodeDecodeError, csv.Error) as err:
        raise DomainError(N_("The file is not a UTF-8 CSV file (%(detail)s)."), field=field,
                          detail=str(err)[:120]) from None
    if not header:
        raise DomainError(N_("The CSV file is empty."), field=field)
    return header, rows


def _ids(header: list[str], rows: list[dict[str, str]], id_column: str, field: str) -> list[str]:
    if id_column not in header:
        raise DomainError(N_("The CSV file has no column %(column)s."), field=field, column=id_column)
    ids = [(r.get(id_column) or "").strip() for r in rows]
    for line, value in enumerate(ids, start=2):
        if not value:
            raise DomainError(N_("Line %(line)s has an empty id."), field=field, line=line)
    seen: set[str] = set()
    for line, value in enumerate(ids, start=2):
        if value in seen:
            raise DomainError(N_("Line %(line)s repeats the id %(id)s."), field=field, line=line, id=value)
        seen.add(value)
    if not ids:
        raise DomainError(N_("The CSV file has no rows."), field=field)
    return ids


def _check_truth(path: Path, challenge: Challenge, field: str) -> list[str]:
    header, rows = _read_csv(path, field)
    ids = _ids(header, rows, challenge.id_column, field)
    if challenge.prediction_column not in header:
        raise DomainError(N_("The CSV file has no column %(column)s."), field=field, column=challenge.prediction_column)
    for line, row in enumerate(rows, start=2):
        if not (row.get(challenge.prediction_column) or "").strip():
            raise DomainError(N_("Line %(line)s has no value in %(column)s."), field=field, line=line,
                              column=challenge.prediction_column)
    return ids


def _safe_member(name: str) -> PurePosixPath:
    """Refuse absolute paths, '..', drive letters and backslashes (a zip-slip)."""
    path = PurePosixPath(name)
    if (not name or name.startswith("/") or "\\" in name or ".." in path.parts
            or (path.parts and ":" in path.parts[0])):
        raise DomainError(N_("The zip file contains an unsafe path: %(name)s"), field="files", name=name[:200])
    return path


def extract_zip(src: Path, dest: Path, budget: _Budget) -> int:
    """Extract a zip of input files safely (no absolute paths, no '..', no links, size-capped)."""
    try:
        archive = zipfile.ZipFile(src)
    except zipfile.BadZipFile:
        raise DomainError(N_("The files upload is not a valid zip file."), field="files") from None
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            raise DomainError(N_("The zip file has more than %(n)s entries."), field="files", n=MAX_ZIP_MEMBERS)
        for info in infos:
            _safe_member(info.filename)
            mode = (info.external_attr >> 16) & 0o170000
            if mode and mode not in (stat.S_IFREG, stat.S_IFDIR):
                raise DomainError(N_("The zip file contains a link or special file: %(name)s"), field="files",
                                  name=info.filename[:200])
        count = 0
        for info in infos:
            target = dest / _safe_member(info.filename)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            # Count the bytes actually written, not the sizes the archive declares (a zip bomb lies).
            with archive.open(info) as member:
                _copy(member, target, budget)
            count += 1
    return count


def for_split(session: Session, challenge_id: int, split: str) -> Dataset | None:
    return session.exec(select(Dataset).where(Dataset.challenge_id == challenge_id, Dataset.split == split)).first()


def of_challenge(session: Session, challenge_id: int) -> list[Dataset]:
    return list(session.exec(select(Dataset).where(Dataset.challenge_id == challenge_id).order_by(Dataset.split)))


def upload(session: Session, actor: User, challenge: Challenge, split: str, *, inputs_csv: BinaryIO,
           truth_csv: BinaryIO, data_dir: str, max_bytes: int, files_zip: BinaryIO | None = None,
           sample_inputs_csv: BinaryIO | None = None, sample_truth_csv: BinaryIO | None = None) -> Dataset:
    """Store one split's inputs and truth (replacing an earlier upload until the contract is locked)."""
    require_organiser(actor, challenge)
    split = (split or "").strip().lower()
    if not SPLIT_RE.match(split):
        raise DomainError(N_("The split is a short name such as public or private (letters, digits, - and _)."),
                          field="split")
    existing = for_split(session, challenge.id, split)
    if existing is not None:
        refuse_if_locked(session, challenge, "data")
    if (sample_inputs_csv is None) != (sample_truth_csv is None):
        raise DomainError(N_("A public sample needs both its inputs and its truth."), field="sample_truth")
    root = Path(data_dir)
    staging = root / "tmp" / f"upload-{secrets.token_hex(8)}"
    budget = _Budget(max_bytes)
    try:
        inputs_dir = staging / "inputs"
        _copy(inputs_csv, inputs_dir / INPUTS_NAME, budget)
        _copy(truth_csv, staging / "truth" / TRUTH_NAME, budget)
        header, rows = _read_csv(inputs_dir / INPUTS_NAME, "inputs")
        input_ids = _ids(header, rows, challenge.id_column, "inputs")
        truth_ids = _check_truth(staging / "truth" / TRUTH_NAME, challenge, "truth")
        missing = sorted(set(input_ids) - set(truth_ids))
        extra = sorted(set(truth_ids) - set(input_ids))
        if missing or extra:
            raise DomainError(N_("The truth and the inputs must list the same ids (missing in truth: %(missing)s; "
                                 "not in inputs: %(extra)s)."), field="truth",
                              missing=", ".join(missing[:5]) or "—", extra=", ".join(extra[:5]) or "—")
        if files_zip is not None:
            _copy(files_zip, staging / "files.zip", budget)
            extract_zip(staging / "files.zip", inputs_dir / "files", budget)
            (staging / "files.zip").unlink()
        sample_sha = None
        if sample_inputs_csv is not None and sample_truth_csv is not None:
            sample_sha = _build_sample(staging, challenge, sample_inputs_csv, sample_truth_csv, set(input_ids), budget)
        inputs_sha = tree_sha256(inputs_dir)
        truth_sha = _sha256_file(staging / "truth" / TRUTH_NAME)
        final_inputs = root / "datasets" / str(challenge.id) / split / "inputs"
        final_truth = root / "truth" / str(challenge.id) / split / TRUTH_NAME
        final_sample = root / "samples" / str(challenge.id) / split / SAMPLE_NAME
        _replace_dir(inputs_dir, final_inputs)
        final_truth.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / "truth" / TRUTH_NAME, final_truth)
        final_truth.chmod(0o600)
        if sample_sha is not None:
            final_sample.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / SAMPLE_NAME, final_sample)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    ds = existing or Dataset(challenge_id=challenge.id, split=split, inputs_dir="", truth_path="",
                             inputs_sha256="", truth_sha256="")
    ds.inputs_dir, ds.truth_path = str(final_inputs), str(final_truth)
    ds.inputs_sha256, ds.truth_sha256, ds.rows = inputs_sha, truth_sha, len(input_ids)
    if sample_sha is not None:
        ds.sample_dir, ds.sample_sha256 = str(final_sample.parent), sample_sha
    ds.uploaded_by = actor.id
    session.add(ds)
    session.flush()
    audit.record(session, actor.id, "dataset.upload", "dataset", ds.id, challenge.city_id, challenge=challenge.slug,
                 split=split, rows=ds.rows, inputs_sha256=inputs_sha, truth_sha256=truth_sha)
    session.commit()
    return ds


def _build_sample(staging: Path, challenge: Challenge, inputs: BinaryIO, truth: BinaryIO, hidden_ids: set[str],
                  budget: _Budget) -> str:
    folder = staging / "sample"
    _copy(inputs, folder / INPUTS_NAME, budget)
    _copy(truth, folder / TRUTH_NAME, budget)
    header, rows = _read_csv(folder / INPUTS_NAME, "sample_inputs")
    ids = _ids(header, rows, challenge.id_column, "sample_inputs")
    truth_ids = _check_truth(folder / TRUTH_NAME, challenge, "sample_truth")
    if set(ids) != set(truth_ids):
        raise DomainError(N_("The sample's truth and inputs must list the same ids."), field="sample_truth")
    leaked = sorted(set(ids) & hidden_ids)
    if leaked:
        # A sample row that is also a test row would publish part of the hidden truth.
        raise DomainError(N_("The public sample must not contain test ids (%(ids)s)."), field="sample_inputs",
                          ids=", ".join(leaked[:5]))
    with zipfile.ZipFile(staging / SAMPLE_NAME, "w", zipfile.ZIP_DEFLATED) as out:
        out.write(folder / INPUTS_NAME, f"sample/{INPUTS_NAME}")
        out.write(folder / TRUTH_NAME, f"sample/{TRUTH_NAME}")
    return _sha256_file(staging / SAMPLE_NAME)


def _replace_dir(src: Path, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    old = dest.with_name(dest.name + f".old-{secrets.token_hex(4)}")
    if dest.exists():
        os.replace(dest, old)
    os.replace(src, dest)
    shutil.rmtree(old, ignore_errors=True)


def sample_file(session: Session, challenge: Challenge, split: str) -> Path:
    """The public sample's zip (inputs and truth of sample rows only); never the hidden truth."""
    ds = for_split(session, challenge.id, split)
    if ds is None or not ds.sample_dir:
        raise NotFound(N_("This split has no public sample."))
    path = Path(ds.sample_dir) / SAMPLE_NAME
    if not path.is_file():
        raise NotFound(N_("This split has no public sample."))
    return path


def write_generated(session: Session, actor: User, challenge: Challenge, split: str, inputs: str, truth: str,
                    data_dir: str, sample_inputs: str | None = None, sample_truth: str | None = None) -> Dataset:
    """Upload CSV text held in memory (demo data, tests)."""
    enc = lambda s: io.BytesIO(s.encode())  # noqa: E731
    return upload(session, actor, challenge, split, inputs_csv=enc(inputs), truth_csv=enc(truth), data_dir=data_dir,
                  max_bytes=64 * 1024 * 1024,
                  sample_inputs_csv=enc(sample_inputs) if sample_inputs is not None else None,
                  sample_truth_csv=enc(sample_truth) if sample_truth is not None else None)
