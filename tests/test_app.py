"""The app's pages, rendered headless with Streamlit's AppTest."""

import hashlib
import shutil

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from conftest import app_test, models_dir_holding, PROJECT, encode, make_dicom, make_nifti, phantom

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def models_dir(tiny_model, tmp_path_factory):
    return models_dir_holding(tiny_model, tmp_path_factory.mktemp("app-models"))


@pytest.fixture
def app(models_dir, monkeypatch, tmp_path):
    return app_test(models_dir, monkeypatch, tmp_path)


def switch(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"app_pages/{page}.py")
    return at.run()


def upload(at: AppTest, files):
    at.file_uploader[0].set_value(files)
    return at.run()


def texts(at: AppTest) -> list[str]:
    return [e.value for kind in ("success", "warning", "error", "info") for e in getattr(at, kind)]


def test_diagnose_without_upload(app):
    at = app.run()
    assert not at.exception
    assert at.title[0].value == "Diagnose"
    assert any("not a diagnosis" in w.value for w in at.warning)
    assert at.sidebar.selectbox[0].value == "tiny"


def test_diagnose_with_uploads_good_and_bad(app, tmp_path):
    at = app.run()
    good = encode(phantom(128, lesion=True), "PNG")
    at = upload(at, [("scan.png", good, "image/png"), ("report.jpg", b"%PDF-1.4 x", "image/jpeg"),
                     ("empty.png", b"", "image/png")])
    assert not at.exception
    errors = [e.value for e in at.error]
    assert any("report.jpg" in e and "PDF" in e for e in errors)
    assert any("empty.png" in e and "empty" in e for e in errors)
    assert any("Tumour suspected" in t or "No tumour seen" in t or "Cannot assess" in t for t in texts(at))
    # The quick map comes with the call; beside it, what the method's maps are worth (never measured here).
    assert any(c.value.startswith("Grad-CAM has not been measured against expert tumour boxes") for c in at.caption)
    # The page names the input as the audit log does, by its digest.
    assert any(c.value.startswith(f"Input SHA-256 {hashlib.sha256(good).hexdigest()[:16]}") for c in at.caption)
    # A costly method is computed when chosen, and its map replaces the quick one.
    at.selectbox[0].set_value("Occlusion").run()
    assert not at.exception
    assert any(c.value.startswith("Occlusion has not been measured") for c in at.caption)
    assert not any(c.value.startswith("Grad-CAM has not been measured") for c in at.caption)
    # Changing the method reuses the cached assessment and draws another heat map.
    at.selectbox[0].set_value("Grad-CAM++").run()
    assert not at.exception
    assert any(c.value.startswith("Grad-CAM++ has not been measured") for c in at.caption)
    # The assessment went into the audit trail, once, without the file name.
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 1 and "scan.png" not in lines[0]


def test_the_pdf_is_made_only_when_asked_for(app, monkeypatch):
    import brain_cnn.reports.pdf

    made = []
    monkeypatch.setattr(brain_cnn.reports.pdf, "case_report_pdf", lambda *a, **k: made.append(a) or b"%PDF")
    at = upload(app.run(), [("scan.png", encode(phantom(128, lesion=True), "PNG"), "image/png")])
    assert not at.exception
    at.slider[0].set_value(0.8).run()  # a rerun that changes the overlay
    assert not at.exception and made == []


def test_reruns_leave_the_shared_model_alone(app, monkeypatch):
    """Streamlit would clear the Keras session after every rerun, under every session's feet."""
    import keras

    cleared = []
    monkeypatch.setattr(keras.backend, "clear_session", lambda *args, **kwargs: cleared.append(1))
    at = upload(app.run(), [("scan.png", encode(phantom(128, seed=3), "PNG"), "image/png")])
    at.slider[0].set_value(0.3).run()
    assert not at.exception and cleared == []


def test_worklist_and_volumes(app):
    at = app.run()
    volume = np.stack([phantom(64, lesion=i > 4, seed=i) for i in range(8)], axis=-1).astype(np.float32)
    series = [(f"IM{z}", make_dicom(phantom(64, seed=z).astype(np.uint16) * 4, position=float(z)), "application/dicom")
              for z in range(3)]
    at = upload(at, [("a.png", encode(phantom(96)), "image/png"), ("head.nii.gz", make_nifti(volume, gz=True),
                      "application/gzip")] + series)
    assert not at.exception
    assert at.toggle[0].label.startswith("Read DICOM files of the same series as one study")
    # Every call in the worklist; one case's details at a time below it.
    assert any(sub.value == "Worklist" for sub in at.subheader)
    assert len(at.dataframe[0].value) == 3
    cases = at.selectbox(key="case-shown")
    assert cases.options == ["3-file series", "a.png", "head.nii.gz"]
    assert any(sub.value == "3-file series" for sub in at.subheader)
    assert not any(sub.value == "a.png" for sub in at.subheader)
    # The series' header says contrast-enhanced T1, and the page says what is known of the model on such scans.
    assert any(w.value.startswith("T1C+ scan (the series description). This model has not been screened")
               for w in at.warning)
    assert any(s.label == "Slice" for s in at.slider)
    # The NIfTI volume can be re-sliced along another plane.
    cases.set_value(2).run()
    assert not at.exception and any(sub.value == "head.nii.gz" for sub in at.subheader)
    at.radio(key="axis-head.nii.gz").set_value("coronal").run()
    assert not at.exception


def test_every_page_renders(app):
    at = app.run()
    for page, title in [("evaluation", "Evaluation"), ("dataset", "Dataset"), ("model_card", "Model card"),
                        ("audit_log", "Audit log")]:
        at = switch(at, page)
        assert not at.exception, page
        assert at.title[0].value == title
    # The Dataset page explains a missing data folder instead of failing.
    at = switch(at, "dataset")
    assert any("No data set to show" in i.value for i in at.info)


def test_dataset_page_with_a_folder(app, tmp_path):
    from conftest import write_class_folder

    write_class_folder(tmp_path / "no-data-here" / "set", {"notumor": 3, "tumor": 3})  # in BRAIN_CNN_DATA
    at = switch(app.run(), "dataset")
    at.text_input[0].set_value(str(tmp_path / "no-data-here" / "set")).run()
    assert not at.exception
    assert "6 images in 2 classes" in at.caption[0].value
    assert {"**notumor**", "**tumor**"} <= {m.value for m in at.markdown}  # example grid headings


@pytest.mark.parametrize("typed", ["/", "/etc", "{data}/../..", "{data}/../outside", "relative/path"])
def test_the_dataset_page_reads_only_the_data_folders(app, tmp_path, typed):
    from conftest import write_class_folder

    write_class_folder(tmp_path / "outside", {"notumor": 2, "tumor": 2})  # a data set, but not in a data root
    (tmp_path / "no-data-here").mkdir(exist_ok=True)
    at = switch(app.run(), "dataset")
    at.text_input[0].set_value(typed.format(data=tmp_path / "no-data-here")).run()
    assert not at.exception
    assert not at.caption or "images in" not in at.caption[0].value
    shown = " ".join(i.value for i in at.info)
    assert "only this installation's data folders" in shown and "outside" not in shown


def test_no_models_is_a_clear_message(monkeypatch, tmp_path):
    monkeypatch.setenv("BRAIN_CNN_MODELS", str(tmp_path))
    at = AppTest.from_file(str(PROJECT / "app.py"), default_timeout=60).run()
    assert not at.exception
    assert any("No model folders" in e.value for e in at.sidebar.error)


def test_screening_results_show_on_evaluation_and_card(tiny_model, monkeypatch, tmp_path):
    import json

    from conftest import write_class_folder

    from brain_cnn.evaluation.findings import refresh_card
    from brain_cnn.evaluation.screening import evaluate_screening

    models = tmp_path / "models"
    folder = models / "screened"
    shutil.copytree(tiny_model, folder)
    other = tmp_path / "hospital"
    write_class_folder(other, {"Glioma T1": 3, "Glioma T2": 3, "_NORMAL T1": 3, "_NORMAL T2": 3}, start_seed=700)
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"classes": {"Glioma": "glioma", "_NORMAL": "notumor"}}))
    report = evaluate_screening(folder, other, mapping)
    fold = {k: report[k] for k in ("overall", "by_sequence", "seen_in_training", "count")}
    (folder / "loso.json").write_text(json.dumps({"folds": {"hospital": {**fold, "trained_on": ["phantoms"]}}}))
    refresh_card(folder)
    # Whatever the tiny model got wrong, list two gliomas as missed: the gallery draws them from the data folder.
    external = json.loads((folder / "external.json").read_text())
    missed = [{"file": f"Glioma T{n}/{f.name}", "folder": f"Glioma T{n}", "sequence": f"T{n}", "tumour_score": 0.1}
              for n in (1, 2) for f in sorted((other / f"Glioma T{n}").iterdir())[:1]]
    external["hospital"]["errors"].update(missed_tumours=missed, missed_count=2)
    (folder / "external.json").write_text(json.dumps(external))
    monkeypatch.setenv("BRAIN_CNN_DATA", str(tmp_path / "no-data-here"))
    at = _page_over(models, "evaluation", monkeypatch, tmp_path)
    assert not at.exception
    assert "Tumour screening on other data sets" in [s.value for s in at.subheader]
    assert len(at.dataframe) >= 3
    captions = [shown.caption for element in at.get("image") for shown in element.proto.imgs]
    assert captions.count("Glioma T1: P(tumour) 0.10") == 1 and captions.count("Glioma T2: P(tumour) 0.10") == 1
    shutil.rmtree(other)  # the data moved away: the files are named instead
    at.run()
    assert not at.exception
    assert any("is not reachable from this machine" in t and "Glioma T1/" in t for t in texts(at))
    at = switch(at, "model_card")
    assert not at.exception
    shown = " ".join(m.value for m in at.markdown)
    assert "Screened on hospital (12 images)" in shown and "trained without hospital" in shown


def test_explanation_scores_show_on_evaluation_by_tumour_type(tiny_model, monkeypatch, tmp_path):
    from conftest import encode

    from brain_cnn.cli import main

    folder = tmp_path / "models" / "explained"
    shutil.copytree(tiny_model, folder)
    (tmp_path / "boxed" / "tumor").mkdir(parents=True)
    (tmp_path / "boxed" / "tumor" / "a.png").write_bytes(encode(phantom(96, lesion=True)))
    (tmp_path / "boxed" / "boxes.csv").write_text("path,label,x_center,y_center,width,height\n"
                                                  "tumor/a.png,tumor,0.5,0.5,0.3,0.3\n")
    assert main(["explain-eval", "--model", str(folder), "--boxes", str(tmp_path / "boxed" / "boxes.csv")]) == 0
    at = _page_over(tmp_path / "models", "evaluation", monkeypatch, tmp_path)
    assert not at.exception
    assert "Do the heat maps point at the tumour?" in [s.value for s in at.subheader]
    assert any(c.value.startswith("Pointing game by tumour type") for c in at.caption)
    assert any(c.value.startswith("Does the call need the tumour?") for c in at.caption)
    captions = [shown.caption for element in at.get("image") for shown in element.proto.imgs]
    assert any(c.endswith(": a.png") for c in captions)  # the boxed example, drawn with its heat map


def _page_over(models, page: str, monkeypatch, tmp_path) -> AppTest:
    """The app over the model folders in ``models``, switched to ``page``."""
    monkeypatch.setenv("BRAIN_CNN_MODELS", str(models))
    monkeypatch.setenv("BRAIN_CNN_AUDIT", str(tmp_path / "audit.jsonl"))
    monkeypatch.chdir(PROJECT)
    return switch(AppTest.from_file(str(PROJECT / "app.py"), default_timeout=120).run(), page)


def test_an_ensemble_diagnoses_and_its_card_names_its_members(tiny_model, monkeypatch, tmp_path):
    from brain_cnn.training.ensemble import make_ensemble
    from brain_cnn.evaluation.evaluate import evaluate_model_folder

    models = tmp_path / "models"
    members = [shutil.copytree(tiny_model, models / name) for name in ("a", "b")]
    evaluate_model_folder(make_ensemble(members, models / "a-and-b"))
    at = _page_over(models, "diagnose", monkeypatch, tmp_path)
    at.sidebar.selectbox[0].set_value("a-and-b")
    at = upload(at.run(), [("scan.png", encode(phantom(128, lesion=True), "PNG"), "image/png")])
    assert not at.exception
    # An answer: a call, or the tiny members' gate refusing the phantom ("cannot assess"), no other error.
    assert len(at.success) + len(at.warning) + len(at.error) and all(e.icon == ":material/block:" for e in at.error)
    at = switch(at, "model_card")
    assert not at.exception
    assert any("An ensemble" in m.value for m in at.markdown)
    assert "../a  " in at.code[0].value and "../b  " in at.code[0].value


def test_a_distilled_models_card_names_its_teacher(tiny_model, monkeypatch, tmp_path):
    import json

    models = tmp_path / "models"
    student = shutil.copytree(tiny_model, models / "student")
    card = json.loads((student / "card.json").read_text())
    card["training"].update(teacher={"name": "the-ensemble", "folder": "models/the-ensemble", "sha256": "ab" * 32},
                            teacher_weight=0.5, teacher_temperature=2.0)
    (student / "card.json").write_text(json.dumps(card))
    at = _page_over(models, "model_card", monkeypatch, tmp_path)
    assert not at.exception
    line = next(m.value for m in at.markdown if m.value.startswith("**Distilled**"))
    assert "the-ensemble" in line and "weight 0.5" in line and "ab" * 32 in line


def test_a_model_that_cannot_load_is_a_clear_message_and_is_tried_again(tiny_model, monkeypatch, tmp_path):
    models = tmp_path / "models"
    broken = shutil.copytree(tiny_model, models / "broken")
    weights = (broken / "model.keras").read_bytes()
    (broken / "model.keras").write_bytes(weights[: len(weights) // 2])
    at = _page_over(models, "diagnose", monkeypatch, tmp_path)
    at = upload(at, [("scan.png", encode(phantom(128), "PNG"), "image/png")])
    assert not at.exception
    assert any(e.value.startswith("The model broken cannot be loaded") for e in at.error)
    (broken / "model.keras").write_bytes(weights)  # mended: the next upload loads it
    at = upload(at, [("scan.png", encode(phantom(128, seed=1), "PNG"), "image/png")])
    assert not at.exception and not any(e.value.startswith("The model broken") for e in at.error)
    assert any("Grad-CAM for" in (shown.caption or "") for element in at.get("image") for shown in element.proto.imgs)


def test_a_tumour_first_call_says_why_it_is_not_the_largest_class_and_the_card_states_the_rule(monkeypatch, tmp_path):
    from conftest import constant_model

    models = tmp_path / "models"
    # glioma 30 %, meningioma 30 %, notumor 40 % for every input: the top class would say no tumour.
    constant_model(models / "first", {"glioma": 0.30, "meningioma": 0.30, "notumor": 0.40}, "tumour first")
    at = _page_over(models, "diagnose", monkeypatch, tmp_path)
    at = upload(at, [("scan.png", encode(phantom(128, lesion=True), "PNG"), "image/png")])
    assert not at.exception
    assert any(t.startswith("Tumour suspected: most likely glioma (30%)") for t in texts(at))
    assert "Called glioma: the tumour classes together hold 60%, more than no tumour (40%)." in [
        c.value for c in at.caption]
    at = switch(at, "model_card")
    assert not at.exception
    assert any(m.value.startswith("**Decision rule** (tumour first). Tumour first: a slice is called a tumour")
               for m in at.markdown)


def test_a_session_reads_uploads_up_to_its_limits_and_says_so(app, monkeypatch):
    import brain_cnn.scan.limits as limits

    monkeypatch.setattr(limits, "MAX_SESSION_FILES", 2)
    at = app.run()
    at = upload(at, [(f"s{i}.png", encode(phantom(96, seed=i), "PNG"), "image/png") for i in range(3)])
    assert not at.exception
    assert any(w.value.startswith("1 of the 3 uploads were not read") for w in at.warning)
    assert len(at.dataframe[0].value) == 2  # the first two are assessed


def test_a_typed_case_label_names_the_case_in_the_worklist_and_the_audit_trail(app, tmp_path):
    import json

    at = app.run()
    at = upload(at, [("DOE_JANE.png", encode(phantom(96, seed=1), "PNG"), "image/png"),
                     ("b.png", encode(phantom(96, seed=2), "PNG"), "image/png")])
    label = at.text_input(key=next(k.key for k in at.text_input if k.key.startswith("label-")))
    label.set_value("=cmd|x").run()
    assert any(e.value.startswith("That label is not used") for e in at.error)
    label = at.text_input(key=label.key)
    label.set_value("ACC 2024-113").run()
    assert not at.exception
    assert "ACC 2024-113" in list(at.dataframe[0].value["case"])
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert any(line.get("event") == "case label" and line["case"] == "ACC 2024-113" for line in lines)
    assert "DOE" not in (tmp_path / "audit.jsonl").read_text()
