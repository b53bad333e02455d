"""Checkpoints and configurations written by earlier versions load into this one."""

import json
from pathlib import Path

import pytest
import torch
from conftest import CONFIG

from experiment.config import CONFIG_VERSION, ConfigError, RunConfig
from training.build import build_model_and_guide
from training.checkpoint import load_checkpoint, load_states


def saved(model, guide) -> dict:
    return {"srvae": model.state_dict(), "guide": guide.state_dict()}


@pytest.mark.parametrize(("guide", "prior", "borrowed"), [("amortized", "vamp", ("srvae", "p_u.encoder.")),
                                                          ("semi-amortized", "normal", ("guide", "model."))])
def test_shared_modules_saved_once_by_an_older_version_load_into_both_holders(guide, prior, borrowed):
    """A VampPrior holds the guide's encoder and a semi-amortized guide the model: older checkpoints
    kept those tensors only under their owner's keys; loading fills the holder's from them."""
    config = {**CONFIG, "guide": guide, "prior": prior, "components": 3, "refine_steps": 2, "refine_lr": 0.01}
    torch.manual_seed(0)
    old = saved(*build_model_and_guide(RunConfig(**config), (1, 8, 8)))
    holder, prefix = borrowed
    old[holder] = {key: value for key, value in old[holder].items() if not key.startswith(prefix)}
    torch.manual_seed(1)
    model, guide_module = build_model_and_guide(RunConfig(**config), (1, 8, 8))
    load_states(old, model, guide_module)
    now = saved(model, guide_module)
    owner = "guide" if holder == "srvae" else "srvae"
    assert all(torch.equal(now[owner][key], value) for key, value in old[owner].items())
    assert all(torch.equal(now[holder][key], value) for key, value in old[holder].items())


def test_a_vamp_prior_s_own_encoder_loads_from_its_older_name():
    config = {**CONFIG, "guide": "local", "prior": "vamp", "components": 3, "train_images": 10}
    torch.manual_seed(0)
    old = saved(*build_model_and_guide(RunConfig(**config), (1, 8, 8)))
    old["srvae"] = {key.replace("p_u.encoder.", "p_u.own_encoder."): value for key, value in old["srvae"].items()}
    torch.manual_seed(1)
    model, guide = build_model_and_guide(RunConfig(**config), (1, 8, 8))
    load_states(old, model, guide)
    weight = next(key for key in old["srvae"] if key.startswith("p_u.own_encoder."))
    assert torch.equal(model.state_dict()[weight.replace("own_encoder", "encoder")], old["srvae"][weight])


FIXTURE = Path(__file__).parent / "fixtures" / "run-v1"  # a digits run written before the typed configuration
QUICK = ["--test-images", "16", "--sr-samples", "4", "--iw-samples", "8", "--eval-max-particles", "8"]


def test_a_configuration_of_the_first_version_migrates_to_this_one():
    saved = load_checkpoint(FIXTURE / "checkpoint.pt")["config"]
    assert "version" not in saved
    config = RunConfig.from_dict(saved)
    assert config.version == CONFIG_VERSION and config.to_dict()["version"] == CONFIG_VERSION
    assert {key: getattr(config, key) for key in saved} == saved  # every saved setting kept as it was
    with pytest.raises(ConfigError, match="newer version"):
        RunConfig.from_dict({**saved, "version": CONFIG_VERSION + 1})
    with pytest.raises(ConfigError, match="unknown settings"):
        RunConfig.from_dict({**saved, "a_setting_from_the_future": 1})


def test_a_checkpoint_written_by_the_first_version_evaluates_to_the_numbers_it_had(tmp_path, capsys):
    """The fixture's own evaluation, at the same seed and flags, is reproduced by --evaluate to float32 rounding."""
    from run import main

    assert main(["--evaluate", str(FIXTURE / "checkpoint.pt"), *QUICK, "--out", str(tmp_path)]) == 0
    then = json.loads((FIXTURE / "metrics.json").read_text())
    now = json.loads((tmp_path / "metrics.json").read_text())
    # The fixture was written on another machine: a CPU with other vector units rounds float32 sums
    # differently (the −ELBO moved by 2·10⁻⁸ of itself on an AVX-512 machine), so stored numbers are compared
    # within float32 rounding, far below their Monte-Carlo errors; a coverage may move by a pixel or two.
    for key in ("explicit_neg_elbo", "pyro_neg_elbo", "gamma_x", "sr_psnr"):
        assert now[key] == pytest.approx(then[key], rel=1e-5), key
    assert now["coverage_90"] == pytest.approx(then["coverage_90"], abs=1e-3)
    assert json.loads((tmp_path / "config.json").read_text())["version"] == CONFIG_VERSION


def test_a_run_of_version_3_resumes_without_spike_clipping_as_it_was_trained():
    saved = {key: value for key, value in RunConfig().to_dict().items() if key != "spike_clip"}
    config = RunConfig.from_dict({**saved, "version": 3})
    assert config.spike_clip == 0.0 and RunConfig().spike_clip == 4.0
