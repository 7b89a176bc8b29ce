"""The app's pieces that need no browser: images only from the recorded file, who may log in
and review, escaping, the command line, and the layering of the app."""

from __future__ import annotations

import hashlib

import pytest
from PIL import Image as PILImage

from da2k.errors import Da2kError
from da2k.store import Store


def jpeg(path, colour) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    PILImage.new("RGB", (8, 6), colour).save(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_images_are_read_only_from_under_the_images_root(tmp_path):
    pytest.importorskip("gradio")
    from da2k.annotator_app.render import ImageProblem, candidate_files, load_verified

    root = tmp_path / "photos"
    sha = jpeg(root / "indoor" / "a.jpg", (1, 2, 3))
    jpeg(tmp_path / "secret.jpg", (9, 9, 9))
    (root / "indoor" / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    assert candidate_files([root], str(root), "indoor/a.jpg") == [root / "indoor" / "a.jpg"]
    assert load_verified([root], "/elsewhere", "indoor/a.jpg", sha).size == (8, 6)  # a moved database
    for bad in ("../secret.jpg", "indoor/../../secret.jpg", str(tmp_path / "secret.jpg"), ""):
        with pytest.raises(ImageProblem, match="refusing"):
            candidate_files([root], str(root), bad)
    assert candidate_files([root], str(root), "indoor/link.jpg") == []  # a symlink out of the root
    assert candidate_files([root], str(tmp_path), "secret.jpg") == []  # a recorded root outside the allowed one
    with pytest.raises(ImageProblem) as missing:
        load_verified([root], str(root), "indoor/gone.jpg", sha)
    assert missing.value.reason == "missing"


def test_only_the_file_with_the_recorded_sha256_is_shown(tmp_path):
    pytest.importorskip("gradio")
    from da2k.annotator_app.render import ImageProblem, load_verified

    first, second = tmp_path / "one", tmp_path / "two"
    right = jpeg(second / "x.jpg", (200, 10, 10))
    jpeg(first / "x.jpg", (10, 200, 10))  # same relative path, other photo, first in the search
    image = load_verified([first, second], str(first), "x.jpg", right)
    assert image.getpixel((0, 0))[0] > 150  # the red one: the recorded bytes
    with pytest.raises(ImageProblem) as changed:
        load_verified([first], str(first), "x.jpg", right)
    assert changed.value.reason == "changed (sha256 differs)"


def test_text_from_people_and_the_database_is_escaped():
    pytest.importorskip("gradio")
    from da2k.annotator_app.view import review_empty, trail_sentence

    shown = review_empty("<img src=x onerror=alert(1)>", "<b>x</b>")
    assert "<img" not in shown and "&lt;img" in shown and "<b>x" not in shown
    event = {
        "at": "2026-01-01 10:00:00",
        "actor": "<i>ann</i>",
        "action": "human_vote",
        "detail": {"answer": "point1", "seconds": 2.0},
    }
    assert (
        trail_sentence(event, swapped=True) == "2026-01-01 10:00:00 UTC: <i>ann</i> answered 'B is closer' after 2.0 s"
    )


def test_auth_and_reviewer_files_name_who_may_do_what(tmp_path):
    pytest.importorskip("gradio")
    from da2k.annotator_app.access import Access, read_auth_file

    good = tmp_path / "team.txt"
    good.write_text("# annotators\nAnn:s3cret:with colon\n\n+Rita:pw\nbob:pw\n")
    assert read_auth_file(good) == {"ann": "s3cret:with colon", "rita": "pw", "bob": "pw"}
    bad = tmp_path / "bad.txt"
    bad.write_text("ann\n")
    with pytest.raises(Da2kError, match="bad.txt:1"):
        read_auth_file(bad)
    leads = tmp_path / "leads.txt"
    leads.write_text("Bob\n")
    with_logins = Access.from_options(good, None)
    assert with_logins.check_login(" ANN ", "s3cret:with colon") and not with_logins.check_login("ann", "pw")
    assert with_logins.may_review("rita") is None and "not a reviewer" in with_logins.may_review("ann")
    assert Access.from_options(good, leads).may_review("bob") is None
    assert "Nobody may review" in Access.from_options({"ann": "x"}, None).may_review("ann")
    assert Access.from_options(None, None).may_review("anyone") is None  # no --auth: Review is open
    assert "not a reviewer" in Access.from_options(None, leads).may_review("ann")


def test_annotate_command_checks_its_database_and_documents_itself(tmp_path):
    pytest.importorskip("gradio")
    from click.testing import CliRunner

    from da2k.cli import main

    result = CliRunner().invoke(main, ["annotate", "--help"])
    assert result.exit_code == 0 and "--votes-per-pair" in result.output and "127.0.0.1" in result.output
    assert "--reviewers" in result.output
    result = CliRunner().invoke(main, ["annotate", "--db", str(tmp_path / "missing.db")])
    assert result.exit_code == 1 and "no annotation database" in result.output


def test_without_gradio_the_command_says_what_to_install(tmp_path, monkeypatch):
    import sys

    from click.testing import CliRunner

    from da2k.cli import main

    for name in [m for m in sys.modules if m == "gradio" or m.startswith(("gradio.", "da2k.annotator_app"))]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "gradio", None)  # import gradio now fails
    with Store(tmp_path / "a.db"):
        pass
    result = CliRunner().invoke(main, ["annotate", "--db", str(tmp_path / "a.db")])
    assert result.exit_code == 1
    assert "pip install 'da2k[annotate]'" in result.output and "Traceback" not in result.output


def test_the_app_imports_only_the_storage_layer_and_the_cli_not_gradio():
    import ast
    import subprocess
    import sys
    from pathlib import Path

    app_dir = Path(__file__).resolve().parents[1] / "annotator_app"
    for path in app_dir.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            for name in names:
                if name.startswith("da2k"):
                    allowed = ("da2k.store", "da2k.images", "da2k.annotator_app")
                    assert name.startswith(allowed), f"{path.name} imports {name}"
    code = "import sys, da2k.cli; sys.exit('gradio' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
