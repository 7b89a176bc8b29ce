"""Training data, initialisation, pseudo-labelling, stages, and the small-scale proof:
teacher on synthetic RGB-D -> pseudo labels on other scenes -> student -> DA-2K-style accuracy."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from da2k.cli import main
from da2k.models import ModelError, build_model, file_sha256, get_variant
from da2k.models.train.data import (
    Augment,
    TrainSet,
    _hypersim_planar,
    augment,
    parse_data_spec,
    read_label,
    sample_generator,
)
from da2k.models.train.engine import TrainConfig, train
from da2k.models.train.losses import SiLogLoss, SSIGradientLoss
from da2k.models.train.pseudo_label import pseudo_label
from da2k.models.train.stages import dinov2_file, init_model, train_metric
from da2k.synthetic import make_benchmark


def _rgbd_folder(root: Path, n: int = 3, size: tuple[int, int] = (20, 30)) -> Path:
    """Images whose grey level encodes the depth, so alignment after augmentation is checkable."""
    rng = np.random.default_rng(0)
    for i in range(n):
        depth = rng.uniform(1.0, 10.0, size).astype(np.float32)
        grey = np.round(depth * 20).astype(np.uint8)
        (root / "images" / "a").mkdir(parents=True, exist_ok=True)
        (root / "depth" / "images" / "a").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.stack([grey] * 3, -1)).save(root / "images" / "a" / f"{i}.png")
        if i == 0:  # 16-bit PNG in millimetres with a mask
            Image.fromarray(np.round(depth * 1000).astype(np.uint16)).save(root / "depth" / "images" / "a" / f"{i}.png")
            (root / "mask" / "images" / "a").mkdir(parents=True, exist_ok=True)
            mask = np.ones(size, np.uint8) * 255
            mask[:, :5] = 0
            Image.fromarray(mask).save(root / "mask" / "images" / "a" / f"{i}.png")
        else:
            np.save(root / "depth" / "images" / "a" / f"{i}.npy", depth)
    return root


def test_rgbd_folder_reads_npy_and_16bit_png_in_metres_with_its_mask(tmp_path):
    records = parse_data_spec(f"rgbd:{_rgbd_folder(tmp_path)}")
    assert [r.reader for r in records] == ["png16", "npy", "npy"]
    values, valid = read_label(records[0])
    grey = np.array(Image.open(records[0].image))[..., 0]
    assert np.allclose(values[valid], grey[valid] / 20, atol=0.03)  # mm -> m
    assert not valid[:, :5].any() and valid[:, 5:].all()


def test_unknown_or_empty_data_specs_say_what_to_pass(tmp_path):
    with pytest.raises(ModelError, match="rgbd:DIR"):
        parse_data_spec(f"kitti:{tmp_path}")
    with pytest.raises(ModelError, match="no labelled images"):
        parse_data_spec(str(tmp_path))


def test_vkitti2_layout_reads_centimetres_and_masks_sky(tmp_path):
    rgb = tmp_path / "Scene01" / "clone" / "frames" / "rgb" / "Camera_0"
    dep = tmp_path / "Scene01" / "clone" / "frames" / "depth" / "Camera_0"
    rgb.mkdir(parents=True)
    dep.mkdir(parents=True)
    Image.fromarray(np.zeros((4, 6, 3), np.uint8)).save(rgb / "rgb_00000.jpg")
    raw = np.full((4, 6), 1234, np.uint16)
    raw[0] = 65535
    Image.fromarray(raw).save(dep / "depth_00000.png")
    [record] = parse_data_spec(f"vkitti2:{tmp_path}")
    values, valid = read_label(record)
    assert not valid[0].any() and valid[1:].all()
    assert np.allclose(values[1:], 12.34)


def test_hypersim_ray_distance_becomes_smaller_planar_depth_off_axis():
    depth = _hypersim_planar(np.full((768, 1024), 5.0, np.float32))
    assert depth[383:385, 511:513].min() > 4.9999
    assert abs(depth[0, 0] - 5.0 * 886.81 / np.sqrt(511.5**2 + 383.5**2 + 886.81**2)) < 1e-4


def test_hypersim_layout_reads_hdf5_distances_as_planar_depth(tmp_path):
    h5py = pytest.importorskip("h5py")  # the `hypersim` extra (also in `dev`)
    scene = tmp_path / "ai_001_001"
    (scene / "images" / "scene_cam_00_final_preview").mkdir(parents=True)
    (scene / "images" / "scene_cam_00_geometry_hdf5").mkdir(parents=True)
    Image.fromarray(np.zeros((768, 1024, 3), np.uint8)).save(
        scene / "images" / "scene_cam_00_final_preview" / "frame.0000.tonemap.jpg"
    )
    distance = np.full((768, 1024), 4.0, np.float16)
    distance[0, 0] = np.nan  # Hypersim marks missing geometry with NaN
    with h5py.File(scene / "images" / "scene_cam_00_geometry_hdf5" / "frame.0000.depth_meters.hdf5", "w") as f:
        f["dataset"] = distance
    [record] = parse_data_spec(f"hypersim:{tmp_path}")
    values, valid = read_label(record)
    assert not valid[0, 0] and valid.sum() == 768 * 1024 - 1
    assert np.allclose(values[384, 512], 4.0, atol=1e-3) and values[767, 1023] < 3.6


def test_augmentation_moves_image_and_label_together_and_depends_only_on_seed_epoch_index(tmp_path):
    records = parse_data_spec(str(_rgbd_folder(tmp_path, size=(30, 44))))
    image = Image.open(records[1].image).convert("RGB")
    values, valid = read_label(records[1])
    aug = Augment(size=28, jitter=0.0, flip=0.5)
    for index in range(6):  # several crops and flips
        x, t, m = augment(image, values, valid, aug, sample_generator(0, 0, index))
        grey = x[0] * 0.229 + 0.485  # undo the normalisation of the red channel
        # bicubic resizing blurs the image, nearest keeps labels: compare away from nothing but
        # a loose tolerance, which a misaligned crop or a one-sided flip would still break.
        assert torch.corrcoef(torch.stack([grey[m].flatten(), t[m] / 12.75]))[0, 1] > 0.5
    a = augment(image, values, valid, Augment(size=28), sample_generator(3, 1, 7))
    b = augment(image, values, valid, Augment(size=28), sample_generator(3, 1, 7))
    c = augment(image, values, valid, Augment(size=28), sample_generator(3, 2, 7))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], c[0])


def test_depth_labels_become_disparity_with_far_pixels_masked(tmp_path):
    records = parse_data_spec(str(_rgbd_folder(tmp_path)))
    ds = TrainSet(records[1:2], Augment(size=20, train=False), max_depth=5.0)
    sample = ds[0]
    depth = np.load(records[1].label)
    assert sample["mask"].sum() < depth.size and sample["mask"].any()
    assert torch.all(sample["target"][sample["mask"]] >= 1 / 5.0 - 1e-6)
    assert torch.all(sample["target"][~sample["mask"]] == 0)


def test_dinov2_init_loads_the_backbone_strictly_and_rejects_other_files(tmp_path):
    donor = build_model("vits")
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(donor.pretrained.state_dict(), path)
    model = init_model(get_variant("vits"), "dinov2", dinov2_weights=str(path))
    for key, value in donor.pretrained.state_dict().items():
        assert torch.equal(model.pretrained.state_dict()[key], value)
    torch.save(build_model("vit-tiny").pretrained.state_dict(), path)
    with pytest.raises(Exception, match="not a DINOv2 vits checkpoint"):
        init_model(get_variant("vits"), "dinov2", dinov2_weights=str(path))


def test_offline_dinov2_download_error_names_the_file_and_the_flag(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(ModelError, match=r"dinov2_vitb14_pretrain\.pth.*--dinov2-weights"):
        dinov2_file("vitb")


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler:UserWarning")  # fp16 scaler skips step 1
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_autocast_training_steps_stay_finite(tmp_path, precision):
    bench = make_benchmark(tmp_path / "data", n_images=4, size=(28, 36), pairs_per_image=1, exif_every=0)
    ds = TrainSet(parse_data_spec(str(bench.root)), Augment(size=28))
    model = init_model(get_variant("vit-tiny"), "random")
    cfg = TrainConfig(
        out_dir=str(tmp_path / "run"), iters=2, batch_size=2, lr=1e-4, precision=precision, workers=0, log_every=1
    )
    train(model, ds, SSIGradientLoss(), cfg)
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert len(rows) == 3 and all(np.isfinite(float(r.split(",")[2])) for r in rows[1:])


def test_metric_stage_checkpoint_loads_as_the_metric_variant(tmp_path):
    bench = make_benchmark(tmp_path / "data", n_images=2, size=(28, 28), pairs_per_image=1, exif_every=0)
    cfg = TrainConfig(out_dir=str(tmp_path / "metric"), iters=1, batch_size=1, workers=0, log_every=1)
    path = train_metric([str(bench.root)], "vits", cfg, max_depth=20.0, init="random", size=28)
    model = build_model("metric-hypersim-vits", weights=path)  # strict
    assert json.loads((tmp_path / "metric" / "train.json").read_text())["variant"] == "metric-hypersim-vits"
    out = model(torch.zeros(1, 3, 28, 28))
    assert out.shape == (1, 28, 28) and float(out.max().detach()) < 20.0
    assert (
        float(SiLogLoss()(out, torch.full_like(out, 5.0), torch.ones_like(out, dtype=torch.bool)).total.detach()) >= 0
    )


def test_pseudo_labelling_resumes_and_its_manifest_hashes_match_the_files(tmp_path):
    bench = make_benchmark(tmp_path / "real", n_images=5, size=(28, 36), pairs_per_image=1, exif_every=0)
    teacher = tmp_path / "teacher.pt"
    torch.save(build_model("vit-tiny").state_dict(), teacher)
    out = tmp_path / "labels"
    pseudo_label(
        teacher,
        bench.root / "images",
        out,
        encoder="vit-tiny",
        input_size=28,
        device="cpu",
        precision="fp32",
        workers=1,
    )
    part = out / "parts" / "rank-0.jsonl"
    lines = part.read_text().splitlines()
    assert len(lines) == 5
    part.write_text("\n".join(lines[:3]) + "\n" + lines[3][:20])  # "crash": last two lines lost/cut
    kept = {json.loads(line)["label"]: (out / json.loads(line)["label"]).stat().st_mtime_ns for line in lines[:3]}
    manifest = json.loads(
        pseudo_label(teacher, bench.root / "images", out, encoder="vit-tiny", input_size=28, device="cpu").read_text()
    )
    assert len(manifest["items"]) == 5
    assert manifest["teacher"]["sha256"] == file_sha256(teacher)
    for label, mtime in kept.items():
        assert (out / label).stat().st_mtime_ns == mtime  # not recomputed
    for item in manifest["items"]:
        assert item["label_sha256"] == file_sha256(out / item["label"])
        assert item["image_sha256"] == file_sha256(Path(manifest["images_root"]) / item["image"])
        assert np.load(out / item["label"]).dtype == np.float16


@pytest.mark.slow
def test_small_scale_proof_teacher_pseudo_labels_student_beats_80_percent_on_held_out_pairs(tmp_path):
    """The whole V2 recipe at toy scale on CPU: vit-tiny, 56 px crops, 60 steps per stage."""
    started, cpu_started = time.perf_counter(), time.process_time()
    make_benchmark(tmp_path / "synthetic", n_images=128, size=(48, 64), pairs_per_image=1, exif_every=0, seed=1)
    make_benchmark(tmp_path / "real", n_images=128, size=(48, 64), pairs_per_image=1, exif_every=0, seed=2)
    make_benchmark(tmp_path / "heldout", n_images=40, size=(48, 64), pairs_per_image=5, seed=3)
    common = ["--encoder", "vit-tiny", "--init", "random", "--size", "56", "--iters", "60", "--batch-size", "8",
              "--lr", "1e-4", "--workers", "0", "--device", "cpu", "--log-every", "30"]  # fmt: skip
    runner = CliRunner()
    steps = [
        ["train", "teacher", "--data", f"rgbd:{tmp_path / 'synthetic'}", "--out", str(tmp_path / "teacher"), *common],
        ["pseudo-label", "--teacher", str(tmp_path / "teacher" / "model.pt"), "--encoder", "vit-tiny",
         "--images", str(tmp_path / "real" / "images"), "--out", str(tmp_path / "pseudo"), "--input-size", "56", "--device", "cpu"],
        ["train", "student", "--pseudo", str(tmp_path / "pseudo"), "--out", str(tmp_path / "student"), *common,
         "--eval", str(tmp_path / "heldout")],
    ]  # fmt: skip
    for args in steps:
        t = time.perf_counter()
        result = runner.invoke(main, args)
        assert result.exit_code == 0, result.output + repr(result.exception)
        print(f"{args[0]} {args[1]}: {time.perf_counter() - t:.1f} s")
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started

    # Scored by the evaluation code (da2k.evaluate) on held-out scenes, some stored with EXIF tags.
    [result_file] = (tmp_path / "student" / "eval").glob("step*.json")
    student = json.loads(result_file.read_text())["overall"]
    assert student["n"] == 200
    print(
        f"student accuracy {student['accuracy']:.3f} on {student['n']} held-out pairs, {elapsed:.1f} s wall, {cpu:.1f} s CPU"
    )
    assert student["accuracy"] >= 0.80, student
    # "Under 2 minutes on 2 cores" as CPU time (all threads of this process), which, unlike wall
    # time, does not grow when other jobs share the cores (about 20 s CPU when measured).
    assert cpu < 2 * 120, f"{cpu:.0f} s CPU"
    # the student learnt from pseudo labels only: its run never saw a depth file
    assert json.loads((tmp_path / "student" / "train.json").read_text())["pseudo"] == [str(tmp_path / "pseudo")]


def test_two_accumulated_micro_batches_take_the_same_step_as_one_batch_of_both(tmp_path):
    bench = make_benchmark(tmp_path / "data", n_images=8, size=(28, 36), pairs_per_image=1, exif_every=0)
    ds = TrainSet(parse_data_spec(str(bench.root)), Augment(size=28))
    weights = []
    for batch, accum in ((4, 1), (2, 2)):
        torch.manual_seed(0)
        model = init_model(get_variant("vit-tiny"), "random")
        cfg = TrainConfig(
            out_dir=str(tmp_path / f"b{batch}"), iters=2, batch_size=batch, accum=accum, lr=1e-4, workers=0, log_every=1
        )
        weights.append(torch.load(train(model, ds, SSIGradientLoss(), cfg), weights_only=True))
    start = init_model(get_variant("vit-tiny"), "random").state_dict()
    moved = [k for k in start if not torch.equal(start[k], weights[0][k])]
    assert moved  # the steps did change the weights
    # Adam divides by |gradient|, so elements whose gradient is ~0 may step either way on rounding
    # differences between the two summation orders; all others must agree.
    a = torch.cat([weights[0][k].flatten() for k in weights[0]])
    b = torch.cat([weights[1][k].flatten() for k in weights[0]])
    differ = ~torch.isclose(a, b, rtol=1e-4, atol=1e-6)
    assert differ.float().mean() < 1e-3  # measured: 56 of 702529
    logs = [(tmp_path / f"b{b}" / "log.csv").read_text().splitlines()[1:] for b in (4, 2)]
    losses = [[float(row.split(",")[2]) for row in log] for log in logs]
    assert np.allclose(losses[0], losses[1], rtol=1e-5)


def test_cli_reports_a_missing_data_folder_in_one_line(tmp_path):
    result = CliRunner().invoke(
        main,
        ["train", "teacher", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o"), "--encoder", "vit-tiny"],
    )
    assert result.exit_code == 1
    assert "does not exist" in result.output and "Traceback" not in result.output
