"""'bad input, all of it': one table of bad command lines, data files, checkpoints and run
configurations. Each must end with exit status 2 and a one-line message naming the problem, having
written nothing: a new output folder is never created, an existing run folder is left byte for byte.

``run.main`` runs in this process (a fresh interpreter per case would cost 3 s each); one case of
each kind also runs as ``python run.py``, where a warning or traceback would show on stderr.
"""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from datafiles import write_folder, write_image

from run import main

QUICK = ["--epochs", "1", "--eval-particles", "4", "--eval-repeats", "2", "--eval-max-particles", "8", "--sr-samples",
         "4", "--iw-samples", "8", "--test-images", "20", "--hidden", "32"]


def run_main(argv, capsys) -> tuple[int, str, str]:
    try:
        status = main([str(a) for a in argv])
    except SystemExit as exit_:  # argparse's own errors
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two finished runs to resume or evaluate: on the digits, and on a small folder of images."""
    root = tmp_path_factory.mktemp("runs")
    write_folder(root / "scene", n=10, suffix=".npy", dtype=np.float32)
    for name, data in (("digits", []), ("folder", ["--dataset", "folder", "--data-dir", root / "scene"])):
        assert main([str(a) for a in [*data, *QUICK, "--out", root / name]]) == 0
    return root


class Payload:
    """Unpickling this runs code: a checkpoint must never be loaded that way."""

    def __reduce__(self):
        return (exec, ("open(__import__('os').environ['PAYLOAD_MARK'], 'w').write('ran')",))


def copy_run(runs: Path, tmp: Path, name="digits") -> Path:
    shutil.copytree(runs / name, tmp / "run")
    return tmp / "run"


def rewrite(path: Path, **changes) -> Path:
    """Rewrite a checkpoint with some entries changed (``config`` entries merged into its config)."""
    state = torch.load(path, weights_only=True)
    config = {**state["config"], **changes.pop("config", {})}
    torch.save({**state, **changes, "config": config}, path)
    return path


def data_folder(tmp: Path, n=4, **options) -> list:
    write_folder(tmp / "scene", n=n, suffix=".npy", dtype=np.float32, **options)
    return ["--dataset", "folder", "--data-dir", tmp / "scene"]


def checkpoint_case(runs, tmp, **changes):
    """--evaluate on a copy of the digits run's checkpoint rewritten with ``changes``."""
    path = tmp / "checkpoint.pt"
    shutil.copy(runs / "digits" / "checkpoint.pt", path)
    return ["--evaluate", rewrite(path, **changes)]


def resume_case(runs, tmp, *flags, name="digits", **changes):
    """--resume on a copy of a finished run (its checkpoint rewritten with ``changes``); the copy is
    the folder that must stay as it was."""
    folder = copy_run(runs, tmp, name)
    if changes:
        rewrite(folder / "checkpoint.pt", **changes)
    return ["--resume", folder, *flags], folder


def nan_pixels(tmp):
    args = data_folder(tmp)
    write_image(tmp / "scene" / "hr" / "img1.npy", np.full((1, 16, 16), np.nan, dtype=np.float32))
    return args


def wrong_bands(tmp):
    args = data_folder(tmp)
    write_image(tmp / "scene" / "hr" / "img2.npy", np.zeros((3, 16, 16), np.float32))
    return args


def not_divisible(tmp):
    args = data_folder(tmp, paired=False)
    for i in range(4):
        write_image(tmp / "scene" / "hr" / f"img{i}.npy", np.zeros((1, 15, 15), np.float32))
    return args


def corrupt_image(tmp):
    args = data_folder(tmp)
    (tmp / "scene" / "lr" / "img2.npy").write_bytes(b"garbage")
    return args


def empty_folder(tmp):
    (tmp / "scene" / "hr").mkdir(parents=True)
    return ["--dataset", "folder", "--data-dir", tmp / "scene"]


def shrunken_data(runs, tmp):
    """A folder run resumed after one of its training images was removed."""
    args, folder = resume_case(runs, tmp, "--data-dir", tmp / "scene", name="folder")
    shutil.copytree(runs / "scene", tmp / "scene")
    for kind in ("hr", "lr"):
        (tmp / "scene" / kind / "img5.npy").unlink()
    return args, folder


def half_written(runs, tmp):
    folder = copy_run(runs, tmp)
    data = (folder / "checkpoint.pt").read_bytes()
    (folder / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    return ["--resume", folder], folder


def edited_resume(runs, tmp, edit, *flags):
    """--resume on a copy of the digits run whose checkpoint ``edit(state)`` has changed in place."""
    args, folder = resume_case(runs, tmp, *flags)
    state = torch.load(folder / "checkpoint.pt", weights_only=True)
    edit(state)
    torch.save(state, folder / "checkpoint.pt")
    return args, folder


def evil_resume(runs, tmp):
    return edited_resume(runs, tmp, lambda state: state.update(payload=Payload()))


def no_training_state(runs, tmp):
    return edited_resume(runs, tmp, lambda state: state.pop("training"))


def foreign_architecture(runs, tmp):
    return edited_resume(runs, tmp, lambda state: state.update(
        srvae={key: value[..., :1] if value.dim() else value for key, value in state["srvae"].items()}))


def resume_fewer_epochs(runs, tmp):
    return edited_resume(runs, tmp, lambda state: state["training"]["progress"].update(epoch=2), "--epochs", "1")


def garbage(tmp):
    (tmp / "garbage.pt").write_bytes(b"this is not a checkpoint")
    return ["--evaluate", tmp / "garbage.pt"]


def foreign(tmp):
    torch.save({"weights": torch.zeros(3)}, tmp / "foreign.pt")
    return ["--evaluate", tmp / "foreign.pt"]


def no_run(tmp):
    (tmp / "empty").mkdir()
    return ["--resume", tmp / "empty"]


# name → (kind, setup(runs, tmp) → (arguments, folder that must stay as it was or None), expected text)
CASES = {
    # the command line
    "unknown guide": ("command line", lambda r, t: ["--guide", "nope"],
                      "argument --guide: invalid choice: 'nope' (choose from 'amortized', 'local', 'semi-amortized')"),
    "unknown prior": ("command line", lambda r, t: ["--prior", "nope"],
                      "argument --prior: invalid choice: 'nope' (choose from 'normal', 'mog', 'vamp', 'flow')"),
    "unknown dataset": ("command line", lambda r, t: ["--dataset", "nope"],
                        "argument --dataset: invalid choice: 'nope' (choose from 'digits', 'mnist', "
                        "'fashion-mnist', 'cifar10', 'folder')"),
    "unknown objective": ("command line", lambda r, t: ["--objective", "nope"],
                          "argument --objective: invalid choice: 'nope' (choose from 'pyro', 'explicit', 'pyro-jit')"),
    "train only and evaluate": ("command line", lambda r, t: ["--train-only", "--evaluate", t / "x.pt"],
                                "--train-only trains and --evaluate evaluates a trained run: give one of them"),
    "abbreviated flag": ("command line", lambda r, t: ["--epoch", "3"], "unrecognized arguments: --epoch 3"),
    "zero epochs": ("command line", lambda r, t: ["--epochs", "0"],
                    "argument --epochs: must be positive and finite, got 0"),
    "negative batch size": ("command line", lambda r, t: ["--batch-size", "-5"],
                            "argument --batch-size: must be positive and finite, got -5"),
    "non-numeric batch size": ("command line", lambda r, t: ["--batch-size", "many"],
                               "argument --batch-size: expected an integer, got 'many'"),
    "infinite learning rate": ("command line", lambda r, t: ["--lr", "inf"],
                               "argument --lr: must be positive and finite, got inf"),
    "non-numeric learning rate": ("command line", lambda r, t: ["--lr", "fast"],
                                  "argument --lr: expected a number, got 'fast'"),
    "zero clip norm": ("command line", lambda r, t: ["--clip-norm", "0"],
                       "argument --clip-norm: must be positive and finite, got 0"),
    "zero bad steps allowed": ("command line", lambda r, t: ["--max-bad-steps", "0"],
                               "argument --max-bad-steps: must be positive and finite, got 0"),
    "negative checkpoint interval": ("command line", lambda r, t: ["--checkpoint-every", "-1"],
                                     "--checkpoint-every must be 0 or more, got -1"),
    "negative refinement steps": ("command line", lambda r, t: ["--guide", "semi-amortized", "--refine-steps", "-1"],
                                  "--refine-steps must be 0 or more, got -1"),
    "one repeat": ("command line", lambda r, t: ["--eval-repeats", "1"], "--eval-repeats must be at least 2"),
    "local guide without fitting": ("command line", lambda r, t: ["--guide", "local", "--local-steps", "0"],
                                    "--guide local needs --local-steps ≥ 1 to fit the test images"),
    "local guide for the VAE": ("command line", lambda r, t: ["--model", "vae", "--guide", "local"],
                                "--guide local works with --model srvae only"),
    "local guide without an SR posterior": ("command line", lambda r, t: ["--guide", "local", "--sr-fit-steps", "0"],
                                            "--guide local has no q(u | y) for super-resolution"),
    "no pseudo-inputs": ("command line", lambda r, t: ["--prior", "vamp", "--components", "0"],
                         "argument --components: must be positive and finite, got 0"),
    "zero importance samples": ("command line", lambda r, t: ["--iw-samples", "0"],
                                "argument --iw-samples: must be positive and finite, got 0"),
    "zero SR samples": ("command line", lambda r, t: ["--sr-samples", "0"],
                        "argument --sr-samples: must be positive and finite, got 0"),
    "jit with a local guide": ("command line", lambda r, t: ["--objective", "pyro-jit", "--guide", "local"],
                               "--objective pyro-jit compiles the ELBO once: it takes --guide amortized"),
    # data files
    "missing MNIST files": ("data", lambda r, t: ["--dataset", "mnist", "--data-dir", t / "nowhere"],
                            "4 of its files missing in"),
    "crop on the digits": ("data", lambda r, t: ["--crop", "4"], "--crop works with --dataset folder only"),
    "per-pixel scale for the VAE": ("command line", lambda r, t: ["--model", "vae", "--noise", "pixel"],
                                    "--noise pixel is a scale of the SRVAE's p(x | y, z)"),
    "Laplace decoders for the VAE": ("command line", lambda r, t: ["--model", "vae", "--likelihood", "laplace"],
                                     "--likelihood laplace is the SRVAE's"),
    "generalized-normal decoders for the VAE": ("command line",
                                                lambda r, t: ["--model", "vae", "--likelihood", "gennorm"],
                                                "--likelihood gennorm is the SRVAE's"),
    "β-NLL with the explicit objective": ("command line", lambda r, t: ["--objective", "explicit", "--nll-beta", "0.5"],
                                          "--nll-beta weighs the pixels through Pyro's Trace_ELBO"),
    "split on the digits": ("data", lambda r, t: ["--split", "rows"], "--split works with --dataset folder only"),
    "units on the digits": ("data", lambda r, t: ["--units", "reflectance"],
                            "--units works with --dataset folder only"),
    "unknown units": ("command line", lambda r, t: ["--units", "kelvin"],
                      "argument --units: invalid choice: 'kelvin' (choose from 'auto', 'reflectance', 'range')"),
    "rgb bands the images lack": ("data", lambda r, t: ["--rgb-bands", "0,1,2"],
                                  "--rgb-bands 0,1,2: the digits images have 1 band(s), counted from 0 to 0"),
    "rgb bands not three": ("command line", lambda r, t: ["--rgb-bands", "2,1"],
                            "argument --rgb-bands: expected three band indices R,G,B"),
    "scenes without a crop": ("data", lambda r, t: [*data_folder(t), "--split", "rows"], "give --crop P"),
    "crop larger than a scene's training rows": ("data", lambda r, t: [*data_folder(t), "--split", "rows", "--crop",
                                                                        "16"], "is too small for --crop 16"),
    "download the digits": ("data", lambda r, t: ["--download"], "--download fetches mnist, fashion-mnist or cifar10"),
    "empty folder": ("data", lambda r, t: empty_folder(t), "0 images"),
    "corrupt image": ("data", lambda r, t: corrupt_image(t), "img2.npy: cannot read it as an image"),
    "NaN pixels": ("data", lambda r, t: nan_pixels(t), "img1.npy: has NaN or infinite pixels"),
    "wrong channel count": ("data", lambda r, t: wrong_bands(t),
                            "img2.npy: 3 bands of 16×16, but every HR image must be 1 band of 16×16"),
    "size not divisible by the scale": ("data", lambda r, t: not_divisible(t),
                                        "images of 15×15 are not divisible by --scale 2"),
    "LR not 1/s of HR": ("data", lambda r, t: [*data_folder(t), "--scale", "4"],
                         "every LR image (HR size / --scale 4) must be 1 band of 4×4"),
    "crop not a multiple of the scale": ("data", lambda r, t: [*data_folder(t), "--crop", "7"],
                                         "--crop 7: must be a multiple of --scale 2"),
    "discretized on continuous pixels": ("data", lambda r, t: [*data_folder(t), "--likelihood", "discretized"],
                                         "the folder pixels are continuous"),
    "VAE on measured LR images": ("data", lambda r, t: [*data_folder(t), "--model", "vae"],
                                  "--model vae assumes y = d(x)"),
    # checkpoints
    "missing checkpoint": ("checkpoint", lambda r, t: ["--evaluate", t / "absent.pt"], "no such file"),
    "garbage checkpoint": ("checkpoint", lambda r, t: garbage(t), "not a readable checkpoint"),
    "foreign checkpoint": ("checkpoint", lambda r, t: foreign(t), "not an SRVAE-Pyro checkpoint"),
    "newer format": ("checkpoint", lambda r, t: checkpoint_case(r, t, format=99),
                     "checkpoint format 99, this version reads format 1"),
    "other data set": ("checkpoint", lambda r, t: [*checkpoint_case(r, t, config={"dataset": "mnist"}), "--dataset",
                                                   "digits"],
                       "the checkpoint was trained on mnist, not digits"),
    "other image shape": ("checkpoint", lambda r, t: checkpoint_case(r, t, config={"image_shape": [1, 16, 16]}),
                          "expects images of shape [1, 16, 16], digits has [1, 8, 8]"),
    "other architecture": ("checkpoint", lambda r, t: checkpoint_case(r, t, config={"hidden": 64}),
                           "do not match the architecture its configuration describes (srvae: "
                           "p_y_given_u.net.0.weight is [32, 4] in the checkpoint, [64, 4] here)"),
    "code in a pickle": ("checkpoint", lambda r, t: checkpoint_case(r, t, payload=Payload()),
                         "not a readable checkpoint"),
    "code in a pickle, resumed": ("checkpoint", evil_resume, "checkpoint.pt: not a readable checkpoint"),
    "half-written checkpoint, resumed": ("checkpoint", half_written, "checkpoint.pt: not a readable checkpoint"),
    "no training state to resume": ("checkpoint", no_training_state, "its checkpoint holds no training state"),
    "resumed state of another architecture": ("checkpoint", foreign_architecture,
                                              "checkpoint.pt: its state dicts do not match the architecture"),
    # the configuration of a resumed run
    "resume a missing folder": ("configuration", lambda r, t: ["--resume", t / "nowhere"], "no such folder"),
    "resume a folder without a run": ("configuration", lambda r, t: no_run(t), "checkpoint.pt: no such file"),
    "resume with another model": ("configuration", lambda r, t: resume_case(r, t, "--hidden", "64"),
                                  "the run was made with --hidden 32, and a resumed run keeps its model, data and "
                                  "seed: drop --hidden 64"),
    "resume with another seed": ("configuration", lambda r, t: resume_case(r, t, "--seed", "1"),
                                 "the run was made with --seed 0"),
    "resume into another folder": ("configuration", lambda r, t: resume_case(r, t, "--out", t / "elsewhere"),
                                   "a resumed run writes into its own folder and trains; drop --out"),
    "resume and evaluate": ("configuration", lambda r, t: resume_case(r, t, "--evaluate", t / "x.pt"),
                            "drop --evaluate"),
    "resume with fewer epochs": ("configuration", resume_fewer_epochs,
                                 "the run has done 2 epochs already; --epochs must be at least that"),
    "resume with another process count": ("configuration", lambda r, t: edited_resume(
        r, t, lambda state: state["training"].update(ranks=[state["training"]] * 2)),
        "the run was trained by 2 process(es), and this launch has 1; each process resumes its own shards and "
        "random streams: torchrun --nproc_per_node=2 run.py --resume"),
    "resume on changed data": ("configuration", shrunken_data,
                               "the run trained on 8 images of shape [1, 16, 16], but folder in "),
}


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_the_table_covers_every_kind_of_input():
    kinds = [kind for kind, _, _ in CASES.values()]
    assert len(CASES) >= 20 and set(kinds) == {"command line", "data", "checkpoint", "configuration"}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_exits_2_with_one_line_naming_it_and_writes_nothing(runs, tmp_path, case, capsys, monkeypatch):
    _, setup, expected = CASES[case]
    arguments = setup(runs, tmp_path)
    args, kept = arguments if isinstance(arguments, tuple) else (arguments, None)
    before = snapshot(kept) if kept else None
    mark = tmp_path / "payload-ran"
    monkeypatch.setenv("PAYLOAD_MARK", str(mark))
    out = tmp_path / "out"
    status, stdout, stderr = run_main([*args] if "--resume" in map(str, args) else [*args, "--out", out], capsys)
    assert status == 2, stderr
    assert stdout == "" and stderr.count("\n") == 1 and expected in stderr
    assert stderr.startswith("run.py: error: ")
    assert not mark.exists()  # no pickled code ever ran
    assert not out.exists()
    if kept:
        assert snapshot(kept) == before  # the run folder is exactly as it was


@pytest.mark.parametrize("case", ["unknown guide", "NaN pixels", "code in a pickle, resumed",
                                  "resume with another model"])
def test_one_case_of_each_kind_as_a_process_prints_exactly_one_line(runs, tmp_path, case, monkeypatch):
    _, setup, expected = CASES[case]
    arguments = setup(runs, tmp_path)
    args = arguments[0] if isinstance(arguments, tuple) else [*arguments, "--out", tmp_path / "out"]
    monkeypatch.setenv("PAYLOAD_MARK", str(tmp_path / "payload-ran"))
    result = subprocess.run([sys.executable, "run.py", *map(str, args)], cwd=Path(__file__).resolve().parent.parent,
                            capture_output=True, text=True, timeout=600)  # a hang guard only
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "payload-ran").exists() and not (tmp_path / "out").exists()


# the scene command, superresolve.py, on a model of reflectance × 10 000 (three bands, trained on values 0…1000)
def scene_model(tmp: Path) -> Path:
    from test_scene_superres import saved_run
    from test_scene_units import REFLECTANCE

    (tmp / "run").mkdir()
    return saved_run(tmp / "run", normalization=REFLECTANCE)


def scene_image(tmp: Path, values: np.ndarray) -> Path:
    np.save(tmp / "scene.npy", values)
    return tmp / "scene.npy"


def scene_values(bands: int = 3) -> np.ndarray:
    return np.random.default_rng(0).integers(50, 1000, (bands, 20, 26)).astype(np.uint16)


SCENE_CASES = {
    "wrong units": (lambda t: [scene_model(t), scene_image(t, scene_values() / 10_000)],
                    "but the model was trained on values up to 1000, in reflectance × 10000"),
    "wrong band count": (lambda t: [scene_model(t), scene_image(t, scene_values(4))],
                         "4 band(s), but the model of"),
    "unknown bundled name": (lambda t: ["sentinel2-rgb", scene_image(t, scene_values())],
                             "sentinel2-rgb: neither a bundled model (sentinel2-rgbn) nor a checkpoint file"),
    "offset without a number": (lambda t: [scene_model(t), scene_image(t, scene_values()), "--offset", "minus"],
                                "argument --offset: invalid float value: 'minus'"),
}


@pytest.mark.parametrize("case", list(SCENE_CASES))
def test_bad_scene_input_exits_2_with_one_line_and_writes_nothing(tmp_path, case, capsys):
    from experiment.scene import superresolve

    setup, expected = SCENE_CASES[case]
    args = [*map(str, setup(tmp_path)), "--out", str(tmp_path / "out")]
    try:
        status = superresolve(args)
    except SystemExit as exit_:
        status = exit_.code
    stdout, stderr = capsys.readouterr()
    assert status == 2 and stdout == "" and stderr.count("\n") == 1 and expected in stderr, stderr
    assert stderr.startswith("superresolve.py: error: ") and not (tmp_path / "out").exists()


def test_a_scene_in_other_units_as_a_process_prints_exactly_one_line(tmp_path):
    setup, expected = SCENE_CASES["wrong units"]
    command = [sys.executable, "superresolve.py", *map(str, setup(tmp_path)), "--out", str(tmp_path / "o")]
    result = subprocess.run(command, cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True,
                            timeout=600)  # a hang guard only
    assert result.returncode == 2 and result.stdout == "" and "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1 and expected in result.stderr and not (tmp_path / "o").exists()
