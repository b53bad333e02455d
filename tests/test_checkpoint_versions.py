"""Checkpoints written by earlier versions load into the modules of this one."""

import pytest
import torch
from conftest import CONFIG

from training.build import build_model_and_guide
from training.checkpoint import load_states


def saved(model, guide) -> dict:
    return {"srvae": model.state_dict(), "guide": guide.state_dict()}


@pytest.mark.parametrize(("guide", "prior", "borrowed"), [("amortized", "vamp", ("srvae", "p_u.encoder.")),
                                                          ("semi-amortized", "normal", ("guide", "model."))])
def test_shared_modules_saved_once_by_an_older_version_load_into_both_holders(guide, prior, borrowed):
    """A VampPrior holds the guide's encoder and a semi-amortized guide the model: older checkpoints
    kept those tensors only under their owner's keys; loading fills the holder's from them."""
    config = {**CONFIG, "guide": guide, "prior": prior, "components": 3, "refine_steps": 2, "refine_lr": 0.01}
    torch.manual_seed(0)
    old = saved(*build_model_and_guide(config, (1, 8, 8)))
    holder, prefix = borrowed
    old[holder] = {key: value for key, value in old[holder].items() if not key.startswith(prefix)}
    torch.manual_seed(1)
    model, guide_module = build_model_and_guide(config, (1, 8, 8))
    load_states(old, model, guide_module)
    now = saved(model, guide_module)
    owner = "guide" if holder == "srvae" else "srvae"
    assert all(torch.equal(now[owner][key], value) for key, value in old[owner].items())
    assert all(torch.equal(now[holder][key], value) for key, value in old[holder].items())


def test_a_vamp_prior_s_own_encoder_loads_from_its_older_name():
    config = {**CONFIG, "guide": "local", "prior": "vamp", "components": 3, "train_images": 10}
    torch.manual_seed(0)
    old = saved(*build_model_and_guide(config, (1, 8, 8)))
    old["srvae"] = {key.replace("p_u.encoder.", "p_u.own_encoder."): value for key, value in old["srvae"].items()}
    torch.manual_seed(1)
    model, guide = build_model_and_guide(config, (1, 8, 8))
    load_states(old, model, guide)
    weight = next(key for key in old["srvae"] if key.startswith("p_u.own_encoder."))
    assert torch.equal(model.state_dict()[weight.replace("own_encoder", "encoder")], old["srvae"][weight])
