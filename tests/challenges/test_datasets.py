"""Datasets: inputs and truth stored apart and checksummed; unsafe or inconsistent uploads are refused."""
from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path

import pytest

from challenges import datasets
from challenges.models import Dataset
from hub.errors import DomainError
from hub.models import Role
from tests.challenges.conftest import count
from tests.factories import make_approved_team, make_challenge, make_scored_submission, make_user

INPUTS = "id,x\n1,2\n2,4\n3,6\n"
TRUTH = "id,value\n1,1.5\n2,3\n3,4.5\n"


@pytest.fixture
def draft(session):  # type: ignore[no-untyped-def]
    gov = make_user(session, Role.GOV)
    return make_challenge(session, gov=gov), gov


def _upload(session, draft, data_dir, inputs=INPUTS, truth=TRUTH, files=None, max_bytes=10**6, **kw):  # type: ignore[no-untyped-def]
    challenge, gov = draft
    enc = lambda s: io.BytesIO(s.encode() if isinstance(s, str) else s)  # noqa: E731
    return datasets.upload(session, gov, challenge, kw.pop("split", "public"), inputs_csv=enc(inputs),
                           truth_csv=enc(truth), files_zip=enc(files) if files is not None else None,
                           data_dir=str(data_dir), max_bytes=max_bytes, **kw)


def _zip(entries: dict[str, bytes], link: str | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
        if link:
            info = zipfile.ZipInfo(link)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, "/etc/passwd")
    return buf.getvalue()


def test_inputs_and_truth_are_stored_apart_with_checksums(session, draft, data_dir):
    ds = _upload(session, draft, data_dir, files=_zip({"img/a.txt": b"a", "b.txt": b"b"}))
    challenge = draft[0]
    inputs = Path(ds.inputs_dir)
    assert inputs == data_dir / "datasets" / str(challenge.id) / "public" / "inputs"
    assert (inputs / "inputs.csv").read_text() == INPUTS
    assert (inputs / "files" / "img" / "a.txt").read_bytes() == b"a"
    truth = Path(ds.truth_path)
    assert truth == data_dir / "truth" / str(challenge.id) / "public" / "truth.csv"
    assert not str(truth).startswith(str(inputs))
    assert ds.truth_sha256 == hashlib.sha256(TRUTH.encode()).hexdigest()
    assert ds.inputs_sha256 == datasets.tree_sha256(inputs) and ds.rows == 3
    assert not (data_dir / "tmp").exists() or not any((data_dir / "tmp").iterdir())


@pytest.mark.parametrize("kw, field, message", [
    ({"truth": "id,other\n1,1\n2,2\n3,3\n"}, "truth", "no column value"),
    ({"truth": "id,value\n1,1\n2,2\n"}, "truth", "same ids"),
    ({"inputs": "id,x\n1,2\n1,3\n3,4\n"}, "inputs", "repeats the id 1"),
    ({"inputs": "x,y\n1,2\n"}, "inputs", "no column id"),
    ({"truth": "id,value\n1,\n2,3\n3,4\n"}, "truth", "no value"),
    ({"inputs": b"id,x\n\xff\xfe,1\n"}, "inputs", "UTF-8"),
    ({"files": _zip({"../evil.txt": b"x"})}, "files", "unsafe path"),
    ({"files": _zip({"/abs.txt": b"x"})}, "files", "unsafe path"),
    ({"files": _zip({}, link="link")}, "files", "link"),
    ({"files": b"not a zip"}, "files", "not a valid zip"),
    ({"files": _zip({"big.bin": b"0" * 5000}), "max_bytes": 2000}, "inputs", "larger than"),
    ({"split": "Bad/Split"}, "split", "split"),
])
def test_bad_uploads_are_refused_and_nothing_is_kept(session, draft, data_dir, kw, field, message):
    with pytest.raises(DomainError) as err:
        _upload(session, draft, data_dir, **kw)
    assert err.value.field == field and message in str(err.value)
    assert count(session, Dataset) == 0
    assert not (data_dir / "datasets").exists() and not (data_dir / "truth").exists()


def test_public_sample_is_zipped_and_must_not_leak_test_ids(session, draft, data_dir):
    enc = lambda s: io.BytesIO(s.encode())  # noqa: E731
    with pytest.raises(DomainError, match="must not contain test ids"):
        _upload(session, draft, data_dir, sample_inputs_csv=enc("id,x\n1,2\n"), sample_truth_csv=enc("id,value\n1,1\n"))
    ds = _upload(session, draft, data_dir, sample_inputs_csv=enc("id,x\ns1,2\n"),
                 sample_truth_csv=enc("id,value\ns1,1\n"))
    path = datasets.sample_file(session, draft[0], "public")
    with zipfile.ZipFile(path) as zf:
        assert sorted(zf.namelist()) == ["sample/inputs.csv", "sample/truth.csv"]
        assert b"s1" in zf.read("sample/truth.csv") and b"1.5" not in zf.read("sample/truth.csv")
    assert ds.sample_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_data_cannot_be_replaced_once_a_score_exists(session, open_challenge, data_dir):
    oc = open_challenge
    team = make_approved_team(session, oc.challenge, oc.gov).team
    make_scored_submission(session, team, oc.phases[0], 1.0)
    before = datasets.for_split(session, oc.challenge.id, "public").truth_sha256
    with pytest.raises(DomainError) as err:
        _upload(session, (oc.challenge, oc.gov), data_dir)
    assert err.value.code == "locked"
    assert datasets.for_split(session, oc.challenge.id, "public").truth_sha256 == before


def test_only_the_owning_city_uploads(session, draft, data_dir):
    with pytest.raises(DomainError):
        _upload(session, (draft[0], make_user(session, Role.GOV)), data_dir)
