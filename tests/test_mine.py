"""The miner on synthetic scenes with experts of known quality, and on real photos."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from mining_helpers import make_scenes, mine_process, slow_expert_specs
from PIL import Image
from sqlalchemy import func, select

from da2k.cli import main
from da2k.mining import mine, parse_shard, scan_images
from da2k.mining.points import image_rng, propose_pairs
from da2k.predictors import parse_spec
from da2k.store import ExpertImage, ExpertRun, ExpertVote, Pair, Store
from da2k.store import Image as ImageRow
from da2k.store.stats import store_stats

FIXTURES = Path(__file__).parent / "fixtures"
MINE = dict(pairs_per_image=4, points="felzenszwalb", progress=False)


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    return make_scenes(tmp_path_factory.mktemp("scenes"))


def pair_rows(store: Store) -> list[tuple]:
    """Every pair with its image, status, gold flag and answers, in a stable order."""
    with store.read() as s:
        rows = s.execute(
            select(
                ImageRow.sha256,
                Pair.p1_row,
                Pair.p1_col,
                Pair.p2_row,
                Pair.p2_col,
                Pair.status,
                Pair.is_gold,
                Pair.reference_answer,
                Pair.answer,
            ).join(ImageRow, Pair.image_id == ImageRow.id)
        ).all()
    return sorted(tuple(r) for r in rows)


def votes_by_expert(store: Store) -> dict[str, dict[tuple, tuple]]:
    """expert spec -> {(image rel path, point1, point2): (closer, margin)}."""
    with store.read() as s:
        rows = s.execute(
            select(
                ExpertRun.spec,
                ImageRow.path,
                Pair.p1_row,
                Pair.p1_col,
                Pair.p2_row,
                Pair.p2_col,
                ExpertVote.closer,
                ExpertVote.margin,
            )
            .join(Pair, ExpertVote.pair_id == Pair.id)
            .join(ImageRow, Pair.image_id == ImageRow.id)
            .join(ExpertRun, ExpertVote.expert_run_id == ExpertRun.id)
        ).all()
    out: dict[str, dict[tuple, tuple]] = {}
    for spec, path, a, b, c, d, closer, margin in rows:
        out.setdefault(spec, {})[(path, (a, b), (c, d))] = (closer, margin)
    return out


def expected_vote(depth: np.ndarray, p1, p2) -> tuple[str, float]:
    """The vote an exact expert gives from its full-resolution depth map (integer points)."""
    d1, d2 = float(depth[p1]), float(depth[p2])
    low, high = np.percentile(-depth.astype(np.float64), [2, 98])
    if d1 == d2:
        return "tie", 0.0
    return ("point1" if d1 < d2 else "point2"), abs(d1 - d2) / (high - low)


def test_statuses_follow_the_agreement_rule_exactly(scenes, tmp_path):
    names = ("gt", "noisy", "flipped")
    with Store(tmp_path / "a.db") as store:
        report = mine(store, scenes.images, scenes.specs(*names), min_margin=0.05, audit_rate=0.0, **MINE)
        assert report.failed == [] and report.images_new == len(scenes.bench.keys)
        votes = votes_by_expert(store)
        rows = pair_rows(store)
        with store.read() as s:
            paths = dict(s.execute(select(ImageRow.sha256, ImageRow.path)).all())
    assert len(rows) == report.pairs_added > 0
    counts = {"auto_agreed": 0, "needs_human": 0}
    for sha, a, b, c, d, status, is_gold, reference, answer in rows:
        rel, p1, p2 = paths[sha], (a, b), (c, d)
        cast = []
        for name in names:
            expected = expected_vote(scenes.depth(rel, name), p1, p2)
            stored = votes[scenes.expert_name(name)][(rel, p1, p2)]
            assert stored[0] == expected[0] and stored[1] == pytest.approx(expected[1], rel=1e-4)
            cast.append(expected)
        agreed = len({c for c, _ in cast}) == 1 and cast[0][0] != "tie"
        rule = "auto_agreed" if agreed and all(m >= 0.05 for _, m in cast) else "needs_human"
        assert status == rule
        assert answer == (cast[0][0] if rule == "auto_agreed" else None)
        counts[status] += 1
    assert counts["auto_agreed"] > 0 and counts["needs_human"] > 0  # the rule was exercised both ways


def test_a_constant_expert_sends_every_pair_to_humans(scenes, tmp_path):
    with Store(tmp_path / "c.db") as store:
        report = mine(store, scenes.images, scenes.specs("gt", "noisy", "flipped", "constant"), audit_rate=0.0, **MINE)
        votes = votes_by_expert(store)
    constant = votes[scenes.expert_name("constant")]
    assert set(v[0] for v in constant.values()) == {"tie"}
    assert dict(report.statuses) == {"needs_human": report.pairs_added}


def test_audit_sampling_is_reproducible_and_marks_gold_questions(scenes, tmp_path):
    specs = scenes.specs("gt", "noisy")
    gold = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        with Store(tmp_path / f"{name}.db") as store:
            mine(store, scenes.images, specs, audit_rate=0.5, min_margin=0.0, seed=seed, **MINE)
            rows = pair_rows(store)
        gold.append({r[:5] for r in rows if r[6]})
        for r in rows:
            if r[6]:  # gold: agreed by the experts, yet shown to humans with the answer kept
                assert r[5] == "needs_human" and r[7] in ("point1", "point2") and r[8] is None
    with Store(tmp_path / "none.db") as store:
        mine(store, scenes.images, specs, audit_rate=0.0, min_margin=0.0, seed=3, **MINE)
        assert not any(r[6] for r in pair_rows(store))
    assert gold[0] == gold[1] and len(gold[0]) > 0
    assert gold[0] != gold[2]


def test_second_run_adds_nothing(scenes, tmp_path):
    specs = scenes.specs("gt", "noisy", "flipped", "constant")
    with Store(tmp_path / "s.db") as store:
        first = mine(store, scenes.images, specs, **MINE)
        before = (pair_rows(store), store_stats(store)["experts"])
        again = mine(store, scenes.images, specs, **MINE)
        assert (pair_rows(store), store_stats(store)["experts"]) == before
    assert first.images_new > 0 and first.votes_added == 4 * first.pairs_added
    assert (again.images_new, again.pairs_added, again.votes_added) == (0, 0, 0)
    assert again.images_done_before == first.images_new


def test_unreadable_and_duplicate_files_are_reported_and_skipped(scenes, tmp_path):
    images = tmp_path / "images"
    shutil.copytree(scenes.images, images)
    (images / "indoor" / "broken.jpg").write_bytes(b"not a jpeg at all")
    first = sorted((images / "indoor").glob("scene*"))[0]
    shutil.copy(first, images / "indoor" / ("copy" + first.suffix))
    shutil.copytree(scenes.maps["gt"], tmp_path / "gt")
    shutil.copy(scenes.maps["gt"] / "indoor" / (first.stem + ".npy"), tmp_path / "gt" / "indoor" / "copy.npy")
    specs = [f"precomputed:{tmp_path / 'gt'};kind=depth", slow_expert_specs(tmp_path, 1)[0]]
    result = CliRunner().invoke(
        main,
        [
            "mine",
            "--images",
            str(images),
            "--db",
            str(tmp_path / "m.db"),
            "--points",
            "felzenszwalb",
            *sum((["--expert", s] for s in specs), []),
        ],
    )
    assert result.exit_code == 1
    assert "broken.jpg" in result.output and "1 duplicates" in result.output
    with Store(tmp_path / "m.db") as store:
        with store.read() as s:
            assert s.scalar(select(func.count()).select_from(ImageRow)) == len(scenes.bench.keys)


@pytest.mark.slow
def test_killed_run_resumes_without_duplicates_or_losses(scenes, tmp_path):
    experts = slow_expert_specs(tmp_path)
    proc = mine_process(scenes.images, tmp_path / "k.db", experts, delay=0.2)
    deadline = time.time() + 120
    store = Store(tmp_path / "k.db")
    reads = 0
    try:
        while time.time() < deadline:  # concurrent reader while the miner writes
            with store.read() as s:
                done = s.scalar(select(func.count()).select_from(ImageRow))
            reads += 1
            if done >= 2:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with store.read() as s:
            partial = s.scalar(select(func.count()).select_from(ImageRow))
        assert 2 <= partial < len(scenes.bench.keys), "kill landed too late to test resumption"
        resumed = mine_process(scenes.images, tmp_path / "k.db", experts)
        assert resumed.wait(timeout=180) == 0, resumed.stderr.read().decode()
        with Store(tmp_path / "full.db") as full:
            mine(full, scenes.images, experts, pairs_per_image=2, points="felzenszwalb", progress=False)
            assert pair_rows(store) == pair_rows(full)
            assert votes_by_expert(store) == votes_by_expert(full)
        with store.read() as s:
            runs = s.execute(select(ExpertImage.image_id, ExpertImage.expert_run_id)).all()
        assert len(runs) == len(set(runs)) == 2 * len(scenes.bench.keys)
    finally:
        store.close()
        if proc.poll() is None:
            proc.kill()
    assert reads >= 1


@pytest.mark.slow
def test_concurrent_readers_see_consistent_counts_while_mining(scenes, tmp_path):
    proc = mine_process(scenes.images, tmp_path / "r.db", slow_expert_specs(tmp_path), delay=0.05)
    seen = []
    try:
        while not (tmp_path / "r.db").exists() and proc.poll() is None:
            time.sleep(0.05)
        store = Store(tmp_path / "r.db")
        while proc.poll() is None:
            stats = store_stats(store)
            # Images and their pairs and votes land in one transaction: never half an image.
            pairs, votes = stats["pairs"]["total"], sum(e["votes"] for e in stats["experts"])
            assert stats["pairs"]["by_status"]["pending"] == 0
            assert votes == 2 * pairs
            seen.append(stats["images"]["total"])
            time.sleep(0.02)
        store.close()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, proc.stderr.read().decode()
    assert seen == sorted(seen) and len(seen) >= 2


def test_candidate_points_are_seeded_and_mix_within_and_across_segments():
    image = Image.open(FIXTURES / "photos" / "street.jpg")
    a = propose_pairs(image, 6, image_rng(0, "ab" * 32))
    assert a == propose_pairs(image, 6, image_rng(0, "ab" * 32))
    assert a != propose_pairs(image, 6, image_rng(1, "ab" * 32))
    assert {p.relation for p in a.pairs} == {"within", "across"}
    h, w = image.height, image.width
    for p in a.pairs:
        for r, c in (p.point1, p.point2):
            assert 0 < r < h - 1 and 0 < c < w - 1
        assert p.point1 < p.point2  # canonical order: the reversed pair is the same pair
        assert np.hypot(p.point1[0] - p.point2[0], p.point1[1] - p.point2[1]) >= 0.05 * np.hypot(h, w)


def test_scenario_is_the_first_subfolder_or_given(scenes, tmp_path):
    assert {f.scenario for f in scan_images(scenes.images)} == {"indoor", "outdoor", "object", "aerial"}
    assert {f.scenario for f in scan_images(scenes.images, "underwater")} == {"underwater"}
    (tmp_path / "loose").mkdir()
    shutil.copy(FIXTURES / "photos" / "room.jpg", tmp_path / "loose")
    assert [f.scenario for f in scan_images(tmp_path / "loose")] == ["loose"]


def test_shard_and_spec_options_parse(monkeypatch):
    assert parse_shard("1/4") == (1, 4)
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert parse_shard(None) == (2, 3)
    assert parse_spec("precomputed:/m;kind=depth;input_size=392") == (
        "precomputed:/m",
        {"kind": "depth", "input_size": 392},
    )
    from da2k.errors import Da2kError

    with pytest.raises(Da2kError):
        parse_shard("4/4")
    with pytest.raises(Da2kError):
        parse_spec("vits;colour=blue")


def test_real_photos_end_to_end_with_vit_tiny_experts(tmp_path):
    from da2k.models import build_model

    images = tmp_path / "photos" / "outdoor"
    images.mkdir(parents=True)
    for name in ("street.jpg", "room.jpg"):
        shutil.copy(FIXTURES / "photos" / name, images)
    specs = []
    for i in range(4):
        torch.manual_seed(i)
        path = tmp_path / f"tiny{i}.pt"
        torch.save(build_model("vit-tiny").state_dict(), path)
        specs += ["--expert", f"vit-tiny;weights={path};input_size=140"]
    db = tmp_path / "photos.db"
    runner = CliRunner()
    result = runner.invoke(
        main,
        [
            "mine",
            "--images",
            str(tmp_path / "photos"),
            "--db",
            str(db),
            "--points",
            "felzenszwalb",
            "--pairs-per-image",
            "4",
            "--min-margin",
            "0",
            *specs,
        ],
    )
    assert result.exit_code == 0, result.output
    with Store(db) as store:
        stats = store_stats(store)
    assert stats["images"]["by_scenario"] == {"outdoor": 2}
    assert stats["pairs"]["total"] == 8 and stats["pairs"]["by_status"]["pending"] == 0
    assert len(stats["experts"]) == 4 and all(e["votes"] == 8 for e in stats["experts"])
    assert len(stats["agreement"]) == 6
    out = tmp_path / "export"
    assert runner.invoke(main, ["export", "--db", str(db), "--out", str(out)]).exit_code == 0
    assert runner.invoke(main, ["validate", str(out)]).exit_code == 0


def tiny_sam(folder: Path) -> Path:
    """A random-weight SAM small enough for a test (256-pixel input, one block)."""
    from transformers import SamConfig, SamModel, SamProcessor

    try:  # transformers >= 5 without torchvision
        from transformers.models.sam import SamImageProcessorPil as ImageProcessor
    except ImportError:
        from transformers import SamImageProcessor as ImageProcessor

    config = SamConfig(
        vision_config=dict(
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=1,
            mlp_dim=32,
            output_channels=16,
            global_attn_indexes=[0],
            num_pos_feats=8,
            image_size=256,
        ),
        prompt_encoder_config=dict(hidden_size=16, mask_input_channels=4, image_size=256),
        mask_decoder_config=dict(
            hidden_size=16, num_hidden_layers=1, num_attention_heads=1, mlp_dim=32, iou_head_hidden_dim=16
        ),
    )
    torch.manual_seed(0)
    SamModel(config).save_pretrained(folder)
    processor = ImageProcessor(size={"longest_edge": 256}, pad_size={"height": 256, "width": 256})
    SamProcessor(image_processor=processor).save_pretrained(folder)
    return folder


def test_sam_segments_come_from_a_grid_of_prompts_and_a_missing_sam_falls_back(tmp_path):
    from da2k.errors import Da2kError
    from da2k.mining.points import make_segmenter

    name, segmenter = make_segmenter("sam", sam_model=str(tiny_sam(tmp_path / "sam")))
    assert name == f"sam:{tmp_path / 'sam'}"
    segmenter.min_iou = float("-inf")  # random weights: keep every mask
    rgb = np.asarray(Image.open(FIXTURES / "photos" / "street.jpg").convert("RGB"))
    labels = segmenter(rgb)
    assert labels.shape == rgb.shape[:2] and labels.min() >= -1 and labels.max() >= 1
    assert make_segmenter("auto", sam_model=str(tmp_path / "missing"))[0] == "felzenszwalb"
    with pytest.raises(Da2kError, match="--points felzenszwalb"):
        make_segmenter("sam", sam_model=str(tmp_path / "missing"))


def test_mine_help_shows_the_papers_four_experts_as_the_default():
    result = CliRunner().invoke(main, ["mine", "--help"])
    assert result.exit_code == 0
    text = "".join(result.output.split())  # help wraps lines (also at hyphens)
    expected = "v1-vitl,marigold:prs-eth/marigold-depth-v1-1,geowizard:lemonaddie/Geowizard,vitl"
    assert f"Default,thepaper'sfour:{expected}." in text


def test_mine_with_the_default_experts_offline_names_every_missing_item(scenes, tmp_path, monkeypatch):
    result = CliRunner().invoke(main, ["mine", "--images", str(scenes.images), "--db", str(tmp_path / "d.db")])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)
    out = result.output  # stderr too: progress bars and library warnings come before the error
    lines = out[out.index("Error: ") :].splitlines()
    assert len(lines) == 4 and "Traceback" not in out
    for line, name in zip(lines, ("v1-vitl", "marigold:", "geowizard:", "vitl")):
        assert name in line
    assert "HF_HUB_OFFLINE" in lines[2] and "geowizard:DIR" in lines[2]
    monkeypatch.setitem(__import__("sys").modules, "diffusers", None)  # the extras not installed
    result = CliRunner().invoke(main, ["mine", "--images", str(scenes.images), "--db", str(tmp_path / "d.db")])
    assert "pip install 'da2k[marigold]'" in result.output and "pip install 'da2k[geowizard]'" in result.output
