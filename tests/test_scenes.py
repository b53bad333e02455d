"""Real images: scenes split by rows with no test pixel in a training crop, crops and their symmetries,
the per-band and per-pixel scales of p(x | y, z) against Pyro's ELBO, the uncertainty metrics, the
default budget and the learning-rate schedule."""

import math

import numpy as np
import pytest
import torch
from conftest import CONFIG
from datafiles import write_image

from data import DataError, downscale, load_dataset, upsample
from data.crops import symmetries
from data.folder import chip_starts
from evaluation.elbo import explicit_neg_elbo, pyro_neg_elbo
from evaluation.uncertainty import coverage, crps, randomized_pit, sparsification, spearman
from experiment.config import RunConfig
from model.likelihood import gaussian_log_likelihood
from training.build import build_model_and_guide
from training.warmup import lr_factor


def numbered_scene(bands: int, height: int, width: int, first: int = 1) -> np.ndarray:
    """A scene whose every pixel holds its own number (band, row, column all distinct), as float32."""
    return (first + np.arange(bands * height * width, dtype=np.float32)).reshape(bands, height, width)


@pytest.fixture
def scenes(tmp_path):
    """Two scenes of different sizes (HR only): 4 bands of 72×50 and 4 bands of 40×64."""
    (tmp_path / "hr").mkdir()
    write_image(tmp_path / "hr" / "a.npy", numbered_scene(4, 72, 50))
    write_image(tmp_path / "hr" / "b.npy", numbered_scene(4, 40, 64, first=10**6))
    return tmp_path


def test_no_test_pixel_is_ever_inside_a_training_crop(scenes):
    data = load_dataset("folder", scenes, scale=2, crop=8)
    train_pixels = set(data.train_values.flatten().tolist())
    test_pixels = set(data.test_values.flatten().tolist())
    assert not train_pixels & test_pixels  # crops are drawn inside the training chips
    # held out: the last ⌈0.2·H/8⌉ tile rows of each scene, every whole 8-column tile
    assert len(data.test_values) == 2 * (50 // 8) + 1 * (64 // 8)
    assert data.image_shape == (4, 8, 8) and data.test_values.shape[1:] == (4, 8, 8)
    a_test_rows = {int(v) // 50 % 72 for v in data.test_values[:12].flatten().tolist() if v < 10**6}
    assert min(a_test_rows) == 72 - 16 and max(a_test_rows) == 71
    # every pixel above the held-out rows is in some training chip
    scene_a = numbered_scene(4, 72, 50)
    assert set(scene_a[:, :56].flatten().tolist()) <= train_pixels


@pytest.mark.parametrize("length, chip, crop, scale", [(56, 16, 8, 2), (50, 16, 8, 2), (33, 12, 12, 3),
                                                       (100, 64, 32, 4)])
def test_every_window_on_the_lr_grid_lies_inside_one_chip(length, chip, crop, scale):
    starts = chip_starts(length, chip, crop, scale)
    assert starts[0] == 0 and starts[-1] == length - chip
    for window in range(0, length - crop + 1, scale):
        assert any(s <= window and window + crop <= s + chip for s in starts), window


def test_training_crops_of_scenes_are_p_by_p_and_y_is_their_downscaling(scenes):
    data = load_dataset("folder", scenes, scale=2, crop=8, augment=True)
    torch.manual_seed(0)
    x, y = data.train_pair(torch.arange(len(data.train_values)))
    assert x.shape[1:] == (4, 8, 8) and y is None
    lr = load_dataset("folder", scenes, scale=2, crop=8)
    assert lr.low.tolist() == data.low.tolist()  # normalized from the training part only
    assert float(data.normalize(data.test_values).max()) > 1  # the held-out scene b goes above it


def test_symmetries_keep_y_the_downscaling_of_x_and_reach_all_eight():
    torch.manual_seed(0)
    x = torch.rand(1, 2, 8, 8).expand(400, -1, -1, -1)
    flipped, y = symmetries(x, downscale(x))
    torch.testing.assert_close(downscale(flipped), y)
    assert len({tuple(image.flatten().tolist()) for image in flipped}) == 8


def test_scenes_need_a_crop_and_room_for_it(tmp_path, scenes):
    with pytest.raises(DataError, match="give --crop P"):
        load_dataset("folder", scenes, scale=2)
    with pytest.raises(DataError, match=r"a\.npy: 72×50 is too small for --crop 40"):
        load_dataset("folder", scenes, scale=2, crop=40)
    (tmp_path / "hr" / "b.npy").unlink()
    assert len(load_dataset("folder", scenes, scale=2, crop=8).test_values) == 12  # one scene: split by rows


def test_equal_size_tiles_keep_the_split_by_file(tmp_path):
    (tmp_path / "hr").mkdir()
    for i in range(5):
        write_image(tmp_path / "hr" / f"{i}.npy", numbered_scene(1, 16, 16, first=1000 * i))
    data = load_dataset("folder", tmp_path, scale=2, crop=8)
    assert len(data.test_values) == 1 and data.test_values.shape[-1] == 16  # one whole file, cropped when used


@pytest.mark.parametrize("dataset, shape, crop, given, augmented", [
    ("folder", (4, 32, 32), None, None, True),  # a folder of square tiles: flipped and rotated
    ("folder", (4, 8, 8), 8, None, True),  # crops of scenes
    ("folder", (4, 32, 48), None, None, False),  # oblong tiles: a rotation would change their shape
    ("digits", (1, 8, 8), None, None, False),  # digits have an up
    ("folder", (4, 32, 32), None, False, False),  # the flag wins
    ("digits", (1, 8, 8), None, True, True)])
def test_augmentation_is_on_by_default_for_square_folder_images_only(dataset, shape, crop, given, augmented):
    assert RunConfig(dataset=dataset, crop=crop, augment=given).augmentation(shape) is augmented


def scales_z_score(arch: str, noise: str) -> float:
    """(Pyro − explicit) −ELBO per image in standard errors, for a model whose γ₁ differs by band."""
    torch.manual_seed(5)
    config = {**CONFIG, "arch": arch, "noise": noise, "channels": 8, "hidden": 32}
    srvae, guide = build_model_and_guide(RunConfig(**config), (3, 16, 16))
    with torch.no_grad():  # a scale that differs between bands (and pixels)
        srvae.p_x_given_yz.rho.copy_(torch.tensor([-3.0, -2.0, -1.0]).view(3, 1, 1))
    x = torch.rand(8, 3, 16, 16)
    pyro_mean, pyro_se = pyro_neg_elbo(srvae, guide, x, num_particles=50, repeats=10)
    explicit = explicit_neg_elbo(srvae, guide, x, num_samples=50, repeats=10)
    ex_mean, ex_se = explicit["neg_elbo"]
    return (pyro_mean - ex_mean) / math.hypot(pyro_se, ex_se)


@pytest.mark.parametrize("arch", ["mlp", "conv"])
@pytest.mark.parametrize("noise", ["band", "pixel"])
def test_per_band_and_per_pixel_scales_agree_with_trace_elbo(arch, noise):
    """The explicit ELBO's diagonal Gaussian (SPEC §2) against Pyro's Monte-Carlo estimate, within 4
    standard errors, on 3-band 16×16 images."""
    assert abs(scales_z_score(arch, noise)) < 4


def test_the_same_check_catches_one_gamma_where_there_is_one_per_pixel(monkeypatch):
    import model.conditionals

    def one_gamma(x, x_hat, gamma):  # the seed's scalar formula at the mean scale
        return gaussian_log_likelihood(x, x_hat, gamma.mean())

    monkeypatch.setattr(model.conditionals, "gaussian_log_likelihood", one_gamma)
    assert abs(scales_z_score("mlp", "pixel")) > 4


def test_the_diagonal_gaussian_is_the_seeds_formula_at_one_gamma_and_normal_log_prob_otherwise():
    torch.manual_seed(0)
    x, x_hat = torch.rand(5, 2, 4, 4), torch.rand(5, 2, 4, 4)
    gamma = torch.tensor(0.3)
    torch.testing.assert_close(gaussian_log_likelihood(x, x_hat, gamma.expand(2, 1, 1).clone()),
                               gaussian_log_likelihood(x, x_hat, gamma))
    sigma = torch.rand(5, 2, 4, 4) + 0.05
    expected = torch.distributions.Normal(x_hat, sigma).log_prob(x).flatten(1).sum(1)
    torch.testing.assert_close(gaussian_log_likelihood(x, x_hat, sigma), expected)


@pytest.mark.parametrize("samples", [9, 99])
def test_pit_coverage_is_unbiased_for_few_samples_where_empirical_quantiles_are_not(samples):
    """x and its samples from one N(0, 1): coverage within 4 binomial standard errors of the level, for
    9 samples as for 99; the interval between empirical quantiles of 9 samples covers less."""
    generator = torch.Generator().manual_seed(0)
    draws = torch.randn(samples, 400, 1, 8, 8, generator=generator)
    x = torch.randn(400, 1, 8, 8, generator=generator)
    pit = randomized_pit(draws, x, generator)
    for level in (0.5, 0.9, 0.95):
        assert abs(coverage(pit, level).mean().item() - level) < 4 * math.sqrt(level * (1 - level) / x.numel())
    low, high = torch.quantile(draws, torch.tensor([0.05, 0.95]), dim=0)
    if samples == 9:
        assert ((x >= low) & (x <= high)).float().mean().item() < 0.85  # (9·0.9 − 1)/10 = 0.71 on average


def test_crps_of_samples_matches_its_definition_and_a_point_forecasts_is_its_error():
    generator = torch.Generator().manual_seed(1)
    draws, x = torch.randn(30, 2, 1, 3, 3, generator=generator), torch.randn(2, 1, 3, 3, generator=generator)
    pairs = (draws[:, None] - draws[None]).abs().mean((0, 1))
    torch.testing.assert_close(crps(draws, x), (draws - x).abs().mean(0) - pairs / 2)
    torch.testing.assert_close(crps(x[None].expand(5, -1, -1, -1, -1), x + 1), torch.ones_like(x))
    many = torch.randn(20000, 1, generator=generator)  # N(0, 1) at 0: CRPS = (√2 − 1)/√π
    assert abs(crps(many, torch.zeros(1)).item() - (math.sqrt(2) - 1) / math.sqrt(math.pi)) < 0.01


def test_spearman_and_sparsification_know_a_perfect_and_a_useless_std():
    generator = torch.Generator().manual_seed(2)
    error = torch.rand(20000, generator=generator)
    perfect = sparsification(error.sqrt(), error)  # the same ranking as the error
    assert perfect["ause"] == pytest.approx(0, abs=1e-12) and spearman(error.sqrt(), error) == pytest.approx(1)
    useless = sparsification(torch.rand(20000, generator=generator), error)
    assert useless["ause"] == pytest.approx(useless["ause_random"], abs=0.02)  # no better than random removal
    assert useless["ause_random"] == pytest.approx(0.49, abs=0.02)  # uniform errors: oracle 1 − f, ∫₀^0.99 f df
    assert abs(spearman(torch.rand(20000, generator=generator), error)) < 4 / math.sqrt(20000)


def test_the_cosine_schedule_runs_from_lr_to_a_hundredth():
    assert lr_factor("constant", 50, 100) == 1.0
    assert lr_factor("cosine", 0, 100) == 1.0 and lr_factor("cosine", 50, 100) == pytest.approx(0.505)
    assert lr_factor("cosine", 100, 100) == pytest.approx(0.01) and lr_factor("cosine", 150, 100) == pytest.approx(0.01)


def test_the_conditional_prior_of_z_keeps_its_scale_above_its_floor():
    """KL_z's answer to a mean mismatch δ is at most δ²/(2·0.1²) + its scale terms, however far the
    network drives p(z | y, u)'s raw scales down (SPEC §2; model.conditionals.PZGivenYU)."""
    from model.conditionals import PRIOR_SCALE_MIN

    torch.manual_seed(0)
    srvae, _ = build_model_and_guide(RunConfig(**{**CONFIG, "arch": "mlp"}), (1, 8, 8))
    head = srvae.p_z_given_yu.gaussian.net[-1]
    with torch.no_grad():
        head.weight.zero_()
        head.bias[:8].zero_()
        head.bias[8:].fill_(-1e4)  # every raw scale far below zero
    prior = srvae.p_z_given_yu(torch.rand(5, 1, 4, 4), torch.randn(5, 4))
    assert torch.allclose(prior.base_dist.scale, torch.full((5, 8), PRIOR_SCALE_MIN))
    q = torch.distributions.Independent(torch.distributions.Normal(prior.base_dist.loc + 0.1, PRIOR_SCALE_MIN), 1)
    kl = torch.distributions.kl_divergence(q, prior)
    torch.testing.assert_close(kl, torch.full((5,), 8 * 0.1**2 / (2 * PRIOR_SCALE_MIN**2)))


def test_the_cnn_baseline_starts_at_bicubic_and_learns_the_detail(tmp_path):
    from baselines.cnn import ResidualCNN, train_cnn
    from data import upsample

    rng = np.random.default_rng(0)
    (tmp_path / "hr").mkdir()
    blocks = np.kron(rng.random((2, 32, 24)), np.ones((1, 2, 2))).astype(np.float32)  # x = nearest(y) exactly
    write_image(tmp_path / "hr" / "a.npy", blocks)
    data = load_dataset("folder", tmp_path, scale=2, crop=8)
    torch.manual_seed(0)
    net = ResidualCNN(2, 2, channels=8)
    y = downscale(data.test_images())
    torch.testing.assert_close(net(y), upsample(y, 2, clamp=False))
    losses = train_cnn(net, data, steps=60, batch_size=16, lr=3e-3)
    assert len(losses) == 60 and np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])  # bicubic's error, halved


def test_the_beta_nll_weights_are_one_for_one_scale_and_give_the_batch_squared_error_gradient_at_beta_one():
    import pyro.distributions as dist

    from training.warmup import PixelWeighted

    torch.manual_seed(0)
    x, loc = torch.rand(3, 2, 4, 4), torch.rand(3, 2, 4, 4).requires_grad_()
    same = dist.Normal(loc, torch.full_like(x, 0.2)).to_event(3)
    torch.testing.assert_close(PixelWeighted(same, 0.5).log_prob(x), same.log_prob(x))
    scale = torch.rand(3, 2, 4, 4) + 0.05
    weighted = PixelWeighted(dist.Normal(loc, scale).to_event(3), 1.0).log_prob(x).sum()
    (gradient,) = torch.autograd.grad(weighted, loc)
    # (x − x̂)·σ²/σ² over the batch's mean σ²: the squared error's gradient, the same factor for every pixel
    torch.testing.assert_close(gradient, (x - loc.detach()) / scale.pow(2).mean())
    laplace = PixelWeighted(dist.Laplace(loc, scale).to_event(3), 1.0).log_prob(x).sum()
    (gradient,) = torch.autograd.grad(laplace, loc)
    # sign(x − x̂)·b/b over the batch's mean b: the absolute error's gradient, the same factor for every pixel
    torch.testing.assert_close(gradient, (x - loc.detach()).sign() / scale.mean())


def test_a_scale_network_of_its_own_leaves_the_mean_to_its_network():
    """With the scales apart, the decoder of x starts at (bicubic y, log-scale 0), and what the scale
    network does cannot move the mean."""
    from model.conv import MeanAndScale
    from model.networks import Architecture

    torch.manual_seed(0)
    decoder = Architecture("conv", hidden=16, channels=8).x_decoder((2, 8, 8), 4, (2, 16, 16), 2, heads=2)
    assert isinstance(decoder, MeanAndScale)
    y, z = torch.rand(3, 2, 8, 8), torch.randn(3, 4)
    out = decoder(y, z)
    torch.testing.assert_close(out[:, :2], upsample(y, 2, clamp=False))
    assert out[:, 2:].abs().max().item() == 0.0
    with torch.no_grad():
        for p in decoder.log_scale.parameters():
            p.add_(0.1)
    moved = decoder(y, z)
    torch.testing.assert_close(moved[:, :2], out[:, :2])
    assert (moved[:, 2:] - out[:, 2:]).abs().max().item() > 0.01
