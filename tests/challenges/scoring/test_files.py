"""Scoring a team's prediction CSV against the truth CSV: values, and a precise error for every bad file."""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from sklearn import metrics as skm

from challenges.scoring.files import OutputError, TruthError, check_truth, score_file

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def zh_catalogue() -> dict[str, str]:
    with (ROOT / "translations" / "zh_CN" / "scoring.po").open("rb") as fh:
        return {m.id: m.string for m in read_po(fh, locale="zh_CN") if m.id}


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


@pytest.fixture
def truth(tmp_path: Path) -> Path:
    return write(tmp_path / "truth.csv", "id,label\n1,cat\n2,dog\n3,cat\n4,bird\n")


@pytest.fixture
def number_truth(tmp_path: Path) -> Path:
    return write(tmp_path / "truth_num.csv", "id,value\na,1.0\nb,2.0\nc,3.0\n")


def score(pred: Path, truth: Path, metrics: list[str], column: str = "label", **kwargs: object) -> dict[str, float]:
    return score_file(pred, truth, "id", column, metrics, **kwargs)


def refused(pred: Path, truth: Path, metrics: list[str], column: str = "label", **kwargs: object) -> OutputError:
    with pytest.raises(OutputError) as caught:
        score(pred, truth, metrics, column, **kwargs)
    return caught.value


# ---------------------------------------------------------------- correct files
def test_a_correct_file_is_scored_with_every_metric_asked(tmp_path: Path, truth: Path) -> None:
    pred = write(tmp_path / "p.csv", "id,label\n4,bird\n2,cat\n1,cat\n3,cat\n")   # any order
    result = score(pred, truth, ["accuracy", "macro_f1"])
    assert result == {"accuracy": 0.75,
                      "macro_f1": pytest.approx(skm.f1_score(["cat", "dog", "cat", "bird"],
                                                             ["cat", "cat", "cat", "bird"], average="macro",
                                                             zero_division=0))}


def test_bom_crlf_quotes_extra_columns_and_blank_lines_are_accepted(tmp_path: Path, truth: Path) -> None:
    pred = write(tmp_path / "p.csv", "\ufeffnote,label,id\r\n\"a, b\",cat,1\r\n\r\n"
                                     "\"multi\nline\",dog, 2 \r\nx, cat ,3\r\ny,bird,4\r\n\r\n")
    assert score(pred, truth, ["accuracy"]) == {"accuracy": 1.0}


def test_regression_probability_and_ranking_metrics_from_files(tmp_path: Path, number_truth: Path) -> None:
    pred = write(tmp_path / "p.csv", "id,value\nc,2.5\na,1\nb,4e0\n")
    assert score(pred, number_truth, ["rmse", "mae"], "value") == {
        "rmse": pytest.approx(((0.25 + 4 + 0) / 3) ** 0.5), "mae": pytest.approx(2.5 / 3)}

    truth = write(tmp_path / "t_auc.csv", "id,p\nu,0\nv,0\nw,1\nx,1\n")
    pred = write(tmp_path / "p_auc.csv", "id,p\nu,0.1\nv,0.4\nw,0.35\nx,0.8\n")
    assert score(pred, truth, ["auc"], "p") == {"auc": 0.75}

    truth = write(tmp_path / "t_map.csv", "id,labels\nq1,a c\nq2,b\n")
    pred = write(tmp_path / "p_map.csv", "id,labels\nq1,a b c\nq2,c b\n")
    assert score(pred, truth, ["map"], "labels") == {"map": pytest.approx((5 / 6 + 1 / 2) / 2)}


def test_a_separate_truth_column_name_can_be_given(tmp_path: Path) -> None:
    truth = write(tmp_path / "t.csv", "id,answer\n1,x\n2,y\n")
    pred = write(tmp_path / "p.csv", "id,prediction\n1,x\n2,x\n")
    assert score_file(pred, truth, "id", "prediction", ["accuracy"], truth_column="answer") == {"accuracy": 0.5}


def test_one_hundred_thousand_rows_score_like_sklearn(tmp_path: Path) -> None:
    rng = random.Random(7)
    n = 100_000
    labels = [rng.randint(0, 1) for _ in range(n)]
    probs = [round(rng.random(), 3) for _ in range(n)]
    write(tmp_path / "t.csv", "id,p\n" + "".join(f"r{i},{t}\n" for i, t in enumerate(labels)))
    order = list(range(n))
    rng.shuffle(order)
    write(tmp_path / "p.csv", "id,p\n" + "".join(f"r{i},{probs[i]}\n" for i in order))
    result = score(tmp_path / "p.csv", tmp_path / "t.csv", ["auc", "rmse", "mae"], "p")
    assert result["auc"] == pytest.approx(skm.roc_auc_score(labels, probs), abs=1e-12)
    assert result["mae"] == pytest.approx(skm.mean_absolute_error(labels, probs))


# ---------------------------------------------------------------- missing output
def test_an_absent_file_is_missing_output(tmp_path: Path, truth: Path) -> None:
    err = refused(tmp_path / "nothing.csv", truth, ["accuracy"])
    assert err.outcome == "missing_output"
    assert err.detail == "The file nothing.csv does not exist."


@pytest.mark.parametrize("content", [b"", b"\xef\xbb\xbf", b"\n\n  \n"])
def test_an_empty_file_is_missing_output(tmp_path: Path, truth: Path, content: bytes) -> None:
    err = refused(write(tmp_path / "p.csv", content), truth, ["accuracy"])
    assert err.outcome == "missing_output"
    assert "p.csv" in err.detail and ("empty" in err.detail or "no content" in err.detail)


# ---------------------------------------------------------------- bad output
def test_a_missing_column_names_the_column_and_what_the_header_has(tmp_path: Path, truth: Path) -> None:
    err = refused(write(tmp_path / "p.csv", "id,pred\n1,cat\n"), truth, ["accuracy"])
    assert err.outcome == "bad_output" and err.line == 1
    assert err.detail == "The header (line 1) has no column 'label'; it has 'id', 'pred'."
    err = refused(write(tmp_path / "p.csv", "label,label,id\ncat,cat,1\n"), truth, ["accuracy"])
    assert "more than once" in err.detail


def test_a_line_with_the_wrong_number_of_fields_is_named(tmp_path: Path, truth: Path) -> None:
    err = refused(write(tmp_path / "p.csv", "id,label\n1,cat\n2,dog,extra\n3,cat\n4,bird\n"), truth, ["accuracy"])
    assert err.outcome == "bad_output" and err.line == 3
    assert err.detail == "Line 3 has 3 fields; the header has 2."


def test_line_numbers_count_physical_lines_after_a_quoted_newline(tmp_path: Path) -> None:
    truth = write(tmp_path / "t.csv", "id,label,note\n1,cat,x\n2,dog,y\n")
    pred = write(tmp_path / "p.csv", "id,label,note\n1,cat,\"two\nlines\"\n2,dog\n")
    err = refused(pred, truth, ["accuracy"])
    assert err.line == 4


def test_missing_ids_are_listed(tmp_path: Path, truth: Path) -> None:
    err = refused(write(tmp_path / "p.csv", "id,label\n1,cat\n3,cat\n"), truth, ["accuracy"])
    assert err.outcome == "bad_output"
    assert err.ids == ["2", "4"]
    assert err.detail == "Ids missing from the predictions: 2 of 4, first: '2', '4'."


def test_only_the_first_twenty_ids_are_carried(tmp_path: Path) -> None:
    truth = write(tmp_path / "t.csv", "id,label\n" + "".join(f"{i},a\n" for i in range(50)))
    err = refused(write(tmp_path / "p.csv", "id,label\n0,a\n"), truth, ["accuracy"])
    assert err.ids == [str(i) for i in range(1, 21)]
    assert err.params["count"] == 49
    assert err.detail.endswith("first: '1', '2', '3', '4', '5'.")


def test_duplicate_ids_are_listed_with_their_lines(tmp_path: Path, truth: Path) -> None:
    pred = write(tmp_path / "p.csv", "id,label\n1,cat\n2,dog\n1,dog\n3,cat\n4,bird\n2,dog\n1,cat\n")
    err = refused(pred, truth, ["accuracy"])
    assert err.outcome == "bad_output"
    assert err.ids == ["1", "2"]
    assert err.line == 4
    assert err.detail == "Some ids appear more than once (2 in all), e.g. '1' on lines 2, 4, 8."


def test_unknown_ids_are_listed(tmp_path: Path, truth: Path) -> None:
    pred = write(tmp_path / "p.csv", "id,label\n1,cat\n2,dog\n3,cat\n4,bird\n99,cat\nzz,dog\n")
    err = refused(pred, truth, ["accuracy"])
    assert err.ids == ["99", "zz"] and err.line == 6
    assert err.detail == "Some ids are not in the test set (2 in all), first: '99', 'zz'."


def test_an_empty_id_is_named_by_line(tmp_path: Path, truth: Path) -> None:
    err = refused(write(tmp_path / "p.csv", "id,label\n1,cat\n ,dog\n"), truth, ["accuracy"])
    assert err.line == 3 and err.detail == "Line 3 has an empty id."


@pytest.mark.parametrize(("value", "detail"), [
    ("abc", "Line 3: 'abc' is not a number."),
    ("nan", "Line 3: 'nan' is not a finite number."),
    ("NaN", "Line 3: 'NaN' is not a finite number."),
    ("inf", "Line 3: 'inf' is not a finite number."),
    ("-Infinity", "Line 3: '-Infinity' is not a finite number."),
    ("", "Line 3 has no value where a number is expected."),
])
def test_bad_numbers_are_named_by_line(tmp_path: Path, number_truth: Path, value: str, detail: str) -> None:
    pred = write(tmp_path / "p.csv", f"id,value\na,1\nb,{value}\nc,3\n")
    err = refused(pred, number_truth, ["rmse"], "value")
    assert err.outcome == "bad_output" and err.line == 3 and err.detail == detail


@pytest.mark.parametrize("value", ["1.5", "-0.01", "nan"])
def test_probabilities_must_lie_in_zero_to_one(tmp_path: Path, value: str) -> None:
    truth = write(tmp_path / "t.csv", "id,p\nu,0\nv,1\n")
    err = refused(write(tmp_path / "p.csv", f"id,p\nu,0.2\nv,{value}\n"), truth, ["auc"], "p")
    assert err.line == 3
    assert "outside [0, 1]" in err.detail or "not a finite number" in err.detail
    assert score(write(tmp_path / "p.csv", "id,p\nu,0\nv,1\n"), truth, ["auc"], "p") == {"auc": 1.0}


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path: Path, truth: Path) -> None:
    # the content is also malformed: the size is what gets reported, so nothing was parsed
    pred = write(tmp_path / "p.csv", b"\xff\xfe not csv at all " * 100)
    err = refused(pred, truth, ["accuracy"], max_bytes=1024)
    assert err.outcome == "bad_output"
    assert err.detail == "The file p.csv is 1.8 KiB, over the limit of 1 KiB."
    assert err.params["name"] == "p.csv"


def test_the_default_limit_is_64_mib(tmp_path: Path, truth: Path) -> None:
    pred = tmp_path / "p.csv"
    with pred.open("wb") as fh:
        fh.truncate(65 * 1024 * 1024)           # sparse: the size is what counts, not the disk used
    err = refused(pred, truth, ["accuracy"])
    assert err.detail == "The file p.csv is 65 MiB, over the limit of 64 MiB."


def test_many_duplicate_and_unknown_ids_are_counted_once_each(tmp_path: Path) -> None:
    truth = write(tmp_path / "t.csv", "id,label\n" + "".join(f"{i},a\n" for i in range(30)))
    rows = "".join(f"{i},a\n" for i in range(30)) + "".join(f"{i},a\n{i},a\n" for i in range(25))
    err = refused(write(tmp_path / "p.csv", "id,label\n" + rows), truth, ["accuracy"])
    assert err.params["count"] == 25 and err.ids == [str(i) for i in range(20)]
    assert err.detail == "Some ids appear more than once (25 in all), e.g. '0' on lines 2, 32, 33."
    rows = "".join(f"{i},a\n" for i in range(30)) + "".join(f"x{i},a\nx{i},a\n" for i in range(25))
    err = refused(write(tmp_path / "p.csv", "id,label\n" + rows), truth, ["accuracy"])
    assert err.params["count"] == 25 and err.ids == [f"x{i}" for i in range(20)] and err.line == 32


def test_non_utf8_bytes_are_named_by_line(tmp_path: Path, truth: Path) -> None:
    pred = write(tmp_path / "p.csv", "id,label\n1,cat\n".encode() + "2,狗\n".encode("gbk") + b"3,cat\n4,bird\n")
    err = refused(pred, truth, ["accuracy"])
    assert err.outcome == "bad_output" and err.line == 3
    assert err.detail.startswith("Line 3 is not valid UTF-8 (byte 0xb9")


def test_a_symbolic_link_or_a_fifo_is_not_followed(tmp_path: Path, truth: Path) -> None:
    link = tmp_path / "p.csv"
    link.symlink_to(truth)          # a team that links its output to the truth gains nothing
    err = refused(link, truth, ["accuracy"])
    assert err.outcome == "bad_output" and "symbolic link" in err.detail
    fifo = tmp_path / "fifo.csv"
    os.mkfifo(fifo)                 # opening must not wait for a writer
    err = refused(fifo, truth, ["accuracy"])
    assert err.detail == "The file fifo.csv is not a regular file."
    err = refused(tmp_path, truth, ["accuracy"])
    assert "not a regular file" in err.detail


def test_an_unterminated_quote_is_bad_csv(tmp_path: Path, truth: Path) -> None:
    err = refused(write(tmp_path / "p.csv", 'id,label\n1,"cat\n'), truth, ["accuracy"])
    assert err.outcome == "bad_output" and err.line == 2 and "not valid CSV" in err.detail


# ---------------------------------------------------------------- the truth's faults are not the team's
def test_a_truth_with_one_class_is_refused_for_auc(tmp_path: Path) -> None:
    truth = write(tmp_path / "t.csv", "id,p\nu,1\nv,1\n")
    with pytest.raises(TruthError, match="only one class"):
        score(write(tmp_path / "p.csv", "id,p\nu,0.2\nv,0.9\n"), truth, ["auc"], "p")


def test_a_broken_truth_raises_truth_error_not_output_error(tmp_path: Path) -> None:
    pred = write(tmp_path / "p.csv", "id,p\nu,0.2\nv,0.9\n")
    with pytest.raises(TruthError, match="Line 3: '2' is not 0 or 1"):
        score(pred, write(tmp_path / "t.csv", "id,p\nu,0\nv,2\n"), ["auc"], "p")
    with pytest.raises(TruthError, match="repeats the id 'u'"):
        score(pred, write(tmp_path / "t.csv", "id,p\nu,0\nu,1\n"), ["auc"], "p")
    with pytest.raises(TruthError, match="does not exist"):
        score(pred, tmp_path / "gone.csv", ["auc"], "p")


def test_a_truth_can_be_checked_at_upload_for_the_metrics_it_serves(tmp_path: Path) -> None:
    good = write(tmp_path / "t.csv", "id,p\nu,0\nv,1\nw,1\n")
    assert check_truth(good, "id", "p", ["auc", "accuracy", "map"]) == 3
    with pytest.raises(TruthError, match="only one class") as caught:
        check_truth(write(tmp_path / "one.csv", "id,p\nu,1\nv,1\n"), "id", "p", ["auc"])
    assert caught.value.params == {"value": 1}
    with pytest.raises(TruthError, match="Line 2: 'x' is not a number") as caught:
        check_truth(write(tmp_path / "bad.csv", "id,p\nu,x\n"), "id", "p", ["rmse"])
    assert caught.value.line == 2
    with pytest.raises(TruthError, match="header but no rows"):
        check_truth(write(tmp_path / "none.csv", "id,p\n"), "id", "p", ["rmse"])


def test_an_unknown_metric_is_refused_before_any_file_is_read(tmp_path: Path) -> None:
    with pytest.raises(KeyError, match="bleu"):
        score(tmp_path / "nothing.csv", tmp_path / "nothing.csv", ["bleu"])


# ---------------------------------------------------------------- translation
def test_every_error_carries_a_translated_msgid_and_its_params(tmp_path: Path, truth: Path,
                                                               zh_catalogue: dict[str, str]) -> None:
    cases = [
        (tmp_path / "nothing.csv", ["accuracy"]),
        (write(tmp_path / "a.csv", "id,pred\n1,cat\n"), ["accuracy"]),
        (write(tmp_path / "b.csv", "id,label\n1,cat\n"), ["accuracy"]),
        (write(tmp_path / "c.csv", "id,label\n1,cat\n1,cat\n"), ["accuracy"]),
        (write(tmp_path / "d.csv", "id,label\n1,cat,x\n"), ["accuracy"]),
        (write(tmp_path / "e.csv", b"id,label\n1,\xff\n"), ["accuracy"]),
    ]
    for pred, wanted in cases:
        with pytest.raises(OutputError) as caught:
            score(pred, truth, wanted)
        err = caught.value
        assert err.message % err.params == err.detail
        chinese = zh_catalogue[err.message] % err.params
        assert chinese and chinese != err.detail
    zh = zh_catalogue["Ids missing from the predictions: %(count)d of %(total)d, first: %(ids)s."]
    assert zh % {"count": 3, "total": 4, "ids": "'2'"} == "预测中缺少 3 个 id（共 4 个），前几个为：'2'。"


def test_the_catalogue_translates_every_message_of_both_modules(zh_catalogue: dict[str, str]) -> None:
    import ast

    for module in ("challenges/scoring/metrics.py", "challenges/scoring/files.py"):
        tree = ast.parse((ROOT / module).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "N_":
                msgid = ast.literal_eval(node.args[0])
                assert zh_catalogue.get(msgid), f"{module}: no Chinese for {msgid!r}"


def test_the_scorer_and_the_registry_load_without_flask_the_database_or_numpy() -> None:
    import subprocess
    import sys

    probe = ("import sys, challenges.scoring.metrics, challenges.scoring.files; "
             "print(sorted({m.split('.')[0] for m in sys.modules} & "
             "{'flask', 'sqlmodel', 'sqlalchemy', 'numpy', 'sklearn', 'docker', 'rq', 'redis'}))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
