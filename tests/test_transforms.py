"""minidl.data.transforms: properties, references, parity with torch, bad input."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minidl as md
from minidl.backend import to_device
from minidl.data import transforms as T
from minidl.data.transforms.geometric import (affine_matrix, perspective_matrix,
                                              rotation_matrix)
from minidl.data.transforms.kernel import filter2d
from minidl.data.transforms.photometric import hsv_to_rgb, rgb_to_hsv
from minidl.testing import assert_close


def images(shape, seed=0, device="cpu", dtype=np.float32):
    x = np.random.default_rng(seed).random(shape).astype(dtype)
    return to_device(x, device)


def np_(a):
    return to_device(a, "cpu")


def gen(seed=0):
    return np.random.default_rng(seed)


# Every transform, built to do something visible, for the generic tests below.
ALL = [
    T.RandomHorizontalFlip(), T.RandomVerticalFlip(), T.RandomCrop(12, padding=2),
    T.RandomCrop(10, padding=(1, 2, 3, 0), padding_mode="reflect"), T.CenterCrop(8),
    T.RandomResizedCrop(9), T.Resize((7, 15)), T.Resize(6), T.RandomRotation(30),
    T.RandomRotation((-20, 40), interpolation="nearest", fill=0.5),
    T.RandomAffine(15, translate=(0.2, 0.1), scale=(0.8, 1.2), shear=(-5, 5, -3, 3)),
    T.RandomPerspective(0.5, p=0.7), T.ColorJitter(0.4, 0.4, 0.4, 0.1),
    T.Grayscale(3), T.RandomGrayscale(0.5), T.AutoContrast(p=0.7), T.Equalize(p=0.7),
    T.Solarize(0.6, p=0.7), T.PCALighting(0.2), T.GaussianBlur(5, (0.5, 2.0)),
    T.Sharpen((0.5, 3.0), p=0.8), T.RandomErasing(p=0.8), T.RandomErasing(p=1.0,
                                                                          value="random"),
    T.Cutout(5, p=0.9), T.GaussianNoise((0.05, 0.2)), T.Normalize((0.5, 0.4, 0.3), 0.2),
    T.ToFloat("float64"),
    T.RandomApply(T.GaussianBlur(3), p=0.5),
    T.Compose([T.RandomCrop(12, padding=2), T.RandomHorizontalFlip(), T.ColorJitter(0.3)]),
]
IDS = [repr(t).split("(")[0] + str(i) for i, t in enumerate(ALL)]


# ---- generic properties of every transform -------------------------------------------

@pytest.mark.parametrize("t", ALL, ids=IDS)
def test_batched_equals_per_image_with_same_params(t, device):
    x = images((5, 3, 12, 12), seed=1, device=device)
    params = t.sample_params(x.shape, gen(3))
    batched = t.apply(x, params)
    assert batched.shape == t.output_shape(x.shape)
    if not isinstance(t, T.ToFloat):             # float32 in, float32 out
        assert batched.dtype == np.float32
    assert batched.dtype == t.apply(x[0], T.select_params(params, 0)).dtype
    for i in range(x.shape[0]):
        single = t.apply(x[i], T.select_params(params, i))
        assert single.shape == t.output_shape(x[i].shape)
        assert_close(single, batched[i], rtol=1e-5, atol=1e-6, msg=f"sample {i}: ")


@pytest.mark.parametrize("t", ALL, ids=IDS)
def test_deterministic_for_a_fixed_seed(t, device):
    x = images((4, 3, 12, 12), seed=2, device=device)
    a, b = t(x, generator=gen(7)), t(x, generator=gen(7))
    assert_close(a, b)
    md.manual_seed(11)
    c = t(x)
    md.manual_seed(11)
    assert_close(t(x), c)
    # The call is sample_params then apply with the same generator.
    assert_close(t.apply(x, t.sample_params(x.shape, gen(7))), a)


@pytest.mark.parametrize("t", ALL, ids=IDS)
def test_random_draws_differ_between_samples(t):
    """Per-sample parameters: a batch of identical images does not come out identical
    (for the transforms that are random per sample and visible on this image)."""
    if not any(k not in ("apply",) for k in (t.sample_params((6, 3, 12, 12), gen(0)) or {})):
        pytest.skip("deterministic transform")
    x = np.repeat(images((1, 3, 12, 12), seed=4), 16, axis=0)
    y = t(x, generator=gen(5))
    assert any(not np.allclose(y[0], y[i]) for i in range(1, 16))


def test_tensor_in_tensor_out():
    x = md.tensor(images((2, 3, 8, 8)))
    y = T.RandomHorizontalFlip(p=1.0)(x)
    assert isinstance(y, md.Tensor)
    assert_close(y, x.numpy()[..., ::-1])


# ---- geometric -----------------------------------------------------------------------

@settings(max_examples=10)
@given(shape=st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 6),
                       st.integers(1, 6)), seed=st.integers(0, 1000))
def test_two_horizontal_flips_are_the_identity(shape, seed):
    x = images(shape, seed)
    flip = T.RandomHorizontalFlip(p=1.0)
    assert_close(flip(flip(x)), x)
    assert_close(flip(x), x[..., ::-1])
    vflip = T.RandomVerticalFlip(p=1.0)
    assert_close(vflip(vflip(x)), x)
    assert_close(vflip(x), x[..., ::-1, :])


def test_flip_probability_zero_and_half():
    x = images((400, 1, 2, 2))
    assert_close(T.RandomHorizontalFlip(p=0.0)(x, generator=gen()), x)
    flipped = T.RandomHorizontalFlip(p=0.5).sample_params(x.shape, gen())["flip"]
    assert 150 < flipped.sum() < 250


def test_rotation_by_zero_and_identity_affine_leave_the_image(device):
    x = images((3, 2, 9, 11), device=device)
    assert_close(T.RandomRotation((0, 0))(x), x, atol=1e-6)
    assert_close(T.RandomAffine(0)(x), x, atol=1e-6)
    assert_close(T.RandomAffine((0, 0), translate=(0, 0), scale=(1, 1), shear=0)(x), x,
                 atol=1e-6)
    assert_close(T.warp(x, np.eye(3)), x, atol=1e-6)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("angle,k", [(90, 1), (-90, -1), (180, 2), (270, 3)])
def test_rotation_by_quarter_turns_equals_rot90(angle, k, mode, device):
    x = images((2, 3, 7, 7), device=device)
    y = T.RandomRotation((angle, angle), interpolation=mode)(x)
    # Positive degrees turn counter-clockwise, as np.rot90 does (torchvision's convention).
    assert_close(y, np.rot90(np_(x), k, axes=(-2, -1)), atol=1e-5)


def test_rotation_angle_range_follows_degrees():
    angles = T.RandomRotation((10, 30)).sample_params((500, 1, 4, 4), gen())["angle"]
    assert angles.min() >= 10 and angles.max() <= 30 and angles.max() - angles.min() > 15
    angles = T.RandomRotation(5).sample_params((500, 1, 4, 4), gen())["angle"]
    assert angles.min() >= -5 and angles.max() <= 5 and angles.min() < -4 and angles.max() > 4


def test_small_positive_angle_turns_counter_clockwise():
    # A bright pixel right of the centre moves up (y decreases) for a positive angle.
    x = np.zeros((1, 1, 21, 21), np.float32)
    x[0, 0, 10, 18] = 1.0
    y = T.RandomRotation((30, 30), interpolation="nearest")(x)
    row, col = np.unravel_index(np.argmax(y[0, 0]), (21, 21))
    assert row == round(10 - 8 * math.sin(math.radians(30)))
    assert col == round(10 + 8 * math.cos(math.radians(30)))


def test_affine_translation_moves_pixels_by_whole_steps():
    x = images((1, 2, 6, 8))
    m = affine_matrix(np.zeros(1), np.array([[2.0, 1.0]]), np.ones(1), np.zeros((1, 2)), 6, 8)
    y = T.warp(x, m)
    assert_close(y[..., 1:, 2:], x[..., :-1, :-2], atol=1e-6)
    assert np.all(y[..., :1, :] == 0) and np.all(y[..., :, :2] == 0)


def test_affine_scale_about_the_centre():
    # Scaling by 2 about the centre: output pixel p shows input point c + (p - c) / 2.
    x = images((1, 1, 9, 9))
    m = affine_matrix(np.zeros(1), np.zeros((1, 2)), np.full(1, 2.0), np.zeros((1, 2)), 9, 9)
    y = T.warp(x, m)
    assert_close(y[0, 0, 4, 4], x[0, 0, 4, 4], atol=1e-6)
    assert_close(y[0, 0, 6, 6], x[0, 0, 5, 5], atol=1e-6)
    assert_close(y[0, 0, 2, 8], x[0, 0, 3, 6], atol=1e-6)


def _grid_sample_reference(x, matrix, padding, mode):
    torch = pytest.importorskip("torch")
    n, c, h, w = x.shape
    ys, xs = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    pts = np.stack([xs.ravel(), ys.ravel(), np.ones(h * w)])
    src = matrix @ pts
    px, py = src[:, 0] / src[:, 2], src[:, 1] / src[:, 2]
    # torch's normalised coordinates with align_corners=False: -1 and 1 are the outer
    # edges, so pixel index p sits at (2 p + 1) / size - 1.
    grid = np.stack([(2 * px + 1) / w - 1, (2 * py + 1) / h - 1], -1).reshape(n, h, w, 2)
    out = torch.nn.functional.grid_sample(torch.from_numpy(x), torch.from_numpy(grid),
                                          mode=mode, padding_mode=padding,
                                          align_corners=False)
    return out.numpy()


@pytest.mark.parametrize("padding,torch_padding", [("fill", "zeros"), ("border", "border")])
@pytest.mark.parametrize("kind", ["affine", "perspective"])
def test_warp_matches_torch_grid_sample(padding, torch_padding, kind):
    x = images((4, 2, 9, 12), seed=3, dtype=np.float64)
    rng = gen(1)
    if kind == "affine":
        m = affine_matrix(rng.uniform(-60, 60, 4), rng.uniform(-3, 3, (4, 2)),
                          rng.uniform(0.6, 1.5, 4), rng.uniform(-10, 10, (4, 2)), 9, 12)
    else:
        start = np.array([[0, 0], [11, 0], [11, 8], [0, 8]], np.float64)
        end = start + rng.uniform(-2, 2, (4, 4, 2))
        m = perspective_matrix(np.broadcast_to(start, (4, 4, 2)), end)
    ours = T.warp(x, m, padding=padding)
    assert_close(ours, _grid_sample_reference(x, m, torch_padding, "bilinear"), atol=1e-10)
    # Nearest: the same except exactly half-way points (random matrices avoid them).
    ours = T.warp(x, m, mode="nearest", padding=padding)
    assert_close(ours, _grid_sample_reference(x, m, torch_padding, "nearest"), atol=1e-12)


def test_warp_fill_value_per_channel():
    x = np.zeros((1, 3, 4, 4), np.float32)
    y = T.warp(x, affine_matrix(np.zeros(1), np.array([[10.0, 0.0]]), np.ones(1),
                                np.zeros((1, 2)), 4, 4), fill=(0.1, 0.2, 0.3))
    assert_close(y[0, :, 0, 0], np.array([0.1, 0.2, 0.3], np.float32))


def test_perspective_matrix_maps_endpoints_to_startpoints():
    start = np.array([[[0, 0], [9, 0], [9, 7], [0, 7]]], np.float64)
    end = start + np.array([[[1, 2], [-2, 1], [-1, -1], [2, -2]]])
    m = perspective_matrix(start, end)
    p = np.concatenate([end[0], np.ones((4, 1))], 1) @ m[0].T
    assert_close(p[:, :2] / p[:, 2:], start[0], atol=1e-9)
    x = images((3, 1, 8, 10))
    assert_close(T.RandomPerspective(p=0.0)(x), x, atol=1e-6)


@pytest.mark.parametrize("size", [(13, 17), (3, 5), (8, 8), (5, 21)])
def test_resize_matches_torch_interpolate(size):
    torch = pytest.importorskip("torch")
    x = images((2, 3, 8, 8), dtype=np.float64)
    expected = torch.nn.functional.interpolate(torch.from_numpy(x), size=size,
                                               mode="bilinear", align_corners=False)
    assert_close(T.Resize(size)(x), expected, atol=1e-12)
    expected = torch.nn.functional.interpolate(torch.from_numpy(x), size=size,
                                               mode="nearest-exact")
    assert_close(T.Resize(size, interpolation="nearest")(x), expected)


def test_resize_int_sets_the_shorter_side():
    assert T.Resize(16).output_shape((3, 8, 12)) == (3, 16, 24)
    assert T.Resize(16)(images((3, 12, 8))).shape == (3, 24, 16)


@settings(max_examples=15)
@given(h=st.integers(4, 9), w=st.integers(4, 9), pad=st.integers(0, 3),
       mode=st.sampled_from(["constant", "edge", "reflect", "symmetric"]),
       seed=st.integers(0, 100))
def test_random_crop_comes_from_the_padded_input(h, w, pad, mode, seed):
    x = images((6, 2, h, w), seed)
    t = T.RandomCrop((h, w), padding=pad, padding_mode=mode, fill=0.25)
    padded = t.padded(x)
    assert padded.shape == (6, 2, h + 2 * pad, w + 2 * pad)
    np.testing.assert_array_equal(padded[:, :, pad:pad + h, pad:pad + w], x)
    params = t.sample_params(x.shape, gen(seed))
    y = t.apply(x, params)
    assert y.shape == (6, 2, h, w)
    for i in range(6):
        top, left = int(params["top"][i]), int(params["left"][i])
        assert 0 <= top <= 2 * pad and 0 <= left <= 2 * pad
        np.testing.assert_array_equal(y[i], padded[i, :, top:top + h, left:left + w])
    if mode == "constant" and pad:
        assert padded[0, 0, 0, 0] == np.float32(0.25)


def test_random_crop_offsets_cover_the_range():
    params = T.RandomCrop(8, padding=4).sample_params((2000, 1, 8, 8), gen())
    assert set(np.unique(params["top"])) == set(range(9))
    assert set(np.unique(params["left"])) == set(range(9))


def test_random_crop_pad_if_needed_and_too_large():
    x = images((2, 1, 5, 6))
    assert T.RandomCrop(8, pad_if_needed=True)(x).shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="RandomCrop: crop size"):
        T.RandomCrop(8)(x)


def test_center_crop_matches_slicing_and_pads():
    x = images((2, 3, 9, 10))
    np.testing.assert_array_equal(T.CenterCrop((5, 4))(x), x[:, :, 2:7, 3:7])
    y = T.CenterCrop(12)(x)
    assert y.shape == (2, 3, 12, 12)
    np.testing.assert_array_equal(y[:, :, 1:10, 1:11], x)
    assert y[0, 0, 0, 0] == 0


def test_random_resized_crop_boxes_follow_scale_and_ratio():
    t = T.RandomResizedCrop(8, scale=(0.2, 0.6), ratio=(0.5, 2.0))
    box = t.sample_params((300, 1, 40, 40), gen())["box"]
    top, left, h, w = box.T
    assert np.all(top >= 0) and np.all(left >= 0)
    assert np.all(top + h <= 40) and np.all(left + w <= 40)
    area = h * w / 1600
    assert area.min() > 0.2 - 0.05 and area.max() < 0.6 + 0.05     # rounding of h, w
    assert (w / h).min() > 0.5 * 0.8 and (w / h).max() < 2.0 * 1.25
    # The whole square image at the same size: the identity.
    x = images((2, 3, 8, 8))
    assert_close(T.RandomResizedCrop(8, scale=(1, 1), ratio=(1, 1))(x), x, atol=1e-6)


def test_random_resized_crop_falls_back_to_a_centre_crop():
    # A ratio no box of the required area can meet: every try fails.
    box = T.RandomResizedCrop(4, scale=(0.9, 1.0), ratio=(3.0, 4.0)).sample_params(
        (5, 1, 10, 10), gen())["box"]
    np.testing.assert_array_equal(box, np.tile([[3, 0, 3, 10]], (5, 1)))


def test_nearest_warp_keeps_integer_masks():
    mask = np.random.default_rng(0).integers(0, 4, (2, 1, 7, 7))
    y = T.RandomRotation((90, 90), interpolation="nearest")(mask)
    assert y.dtype == mask.dtype
    np.testing.assert_array_equal(y, np.rot90(mask, 1, axes=(-2, -1)))
    with pytest.raises(TypeError, match="float"):
        T.RandomRotation(10)(mask)


# ---- photometric ---------------------------------------------------------------------

def test_color_jitter_with_zero_strength_is_the_identity(device):
    x = images((3, 3, 6, 6), device=device)
    assert_close(T.ColorJitter()(x), x)
    assert_close(T.ColorJitter(0, 0, 0, 0)(x), x)
    assert_close(T.ColorJitter(brightness=(1, 1), hue=(0, 0))(x), x)


def test_color_jitter_factors_follow_the_formulas():
    x = images((4, 3, 5, 5)) * 0.5
    params = T.ColorJitter(brightness=0.5).sample_params(x.shape, gen())
    b = params["brightness"]
    assert np.all((b >= 0.5) & (b <= 1.5))
    y = T.ColorJitter(brightness=0.5).apply(x, params)
    assert_close(y, np.clip(x * b[:, None, None, None], 0, 1), rtol=1e-6)
    t = T.ColorJitter(contrast=0.5)
    params = t.sample_params(x.shape, gen())
    c = params["contrast"][:, None, None, None]
    grey = (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]).mean(axis=(1, 2))
    expected = np.clip(c * x + (1 - c) * grey[:, None, None, None], 0, 1)
    assert_close(t.apply(x, params), expected, rtol=1e-5, atol=1e-6)


def test_hsv_round_trip_and_hue_shift():
    x = images((2, 3, 5, 5), dtype=np.float64)
    assert_close(hsv_to_rgb(rgb_to_hsv(x)), x, atol=1e-12)
    red = np.zeros((1, 3, 1, 1))
    red[0, 0] = 1.0
    t = T.ColorJitter(hue=(1 / 3, 1 / 3))
    green = t(red, generator=gen())
    assert_close(green[0, :, 0, 0], np.array([0.0, 1.0, 0.0]), atol=1e-12)


def test_grayscale_and_random_grayscale():
    x = images((2, 3, 4, 4))
    grey = 0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    assert_close(T.Grayscale()(x)[:, 0], grey, rtol=1e-6)
    y = T.Grayscale(3)(x)
    assert y.shape == x.shape and np.array_equal(y[:, 0], y[:, 2])
    assert_close(T.RandomGrayscale(p=0.0)(x), x)


def test_autocontrast_stretches_each_channel():
    x = images((3, 3, 5, 5)) * 0.5 + 0.2
    x[0, 1] = 0.3                                   # a flat channel stays as it is
    y = T.AutoContrast()(x)
    assert_close(y[1:].min(axis=(2, 3)), np.zeros((2, 3)), atol=1e-6)
    assert_close(y[1:].max(axis=(2, 3)), np.ones((2, 3)), atol=1e-6)
    assert_close(y[0, 1], x[0, 1])


def _equalize_reference(x):
    """torchvision's equalize, channel by channel, with plain loops over channels."""
    out = x.copy()
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            levels = np.clip(np.floor(x[n, c] * 255 + 0.5), 0, 255).astype(np.int64)
            hist = np.bincount(levels.ravel(), minlength=256)
            nonzero = hist[hist != 0]
            step = nonzero[:-1].sum() // 255
            if step == 0:
                continue
            lut = (np.cumsum(hist) + step // 2) // step
            lut = np.clip(np.concatenate([[0], lut[:-1]]), 0, 255)
            out[n, c] = lut[levels] / np.float32(255)
    return out


def test_equalize_matches_the_reference():
    rng = gen(0)
    x = (rng.beta(2, 5, (3, 3, 20, 20))).astype(np.float32)     # skewed histograms
    x[1, 2] = 0.5                                               # a flat channel
    x[2, 0] = rng.integers(0, 2, (20, 20)) * 0.7                # two levels only
    assert_close(T.Equalize()(x), _equalize_reference(x), atol=1e-7)
    y = T.Equalize()(x)
    # An equalised channel spreads over the whole range.
    assert y[0, 0].max() > 0.95 and y[0, 0].min() < 0.05


def test_solarize():
    x = images((2, 3, 4, 4))
    assert_close(T.Solarize(0.5)(x), np.where(x >= 0.5, 1 - x, x))
    assert_close(T.Solarize(0.5, p=0.0)(x), x)


def test_pca_lighting_follows_the_data():
    rng = gen(0)
    direction = np.array([0.8, 0.5, 0.33])
    direction /= np.linalg.norm(direction)
    t = rng.standard_normal((64, 1, 6, 6))
    data = 0.5 + 0.2 * t * direction[None, :, None, None] \
        + 0.001 * rng.standard_normal((64, 3, 6, 6))
    pca = T.PCALighting.from_data(data, alphastd=0.5)
    assert abs(abs(pca.eigvec[:, 0] @ direction) - 1) < 1e-4
    assert pca.eigval[0] > 100 * pca.eigval[1]
    y = pca(data[:4], generator=gen(1))
    shift = y - data[:4]
    # The same colour cast for every pixel of a sample, almost along the main direction.
    assert_close(shift, shift[:, :, :1, :1] * np.ones_like(shift), atol=1e-12)
    cast = shift[:, :, 0, 0]
    cos = np.abs(cast @ direction) / np.linalg.norm(cast, axis=1)
    assert np.all(cos > 0.99)
    assert_close(T.PCALighting(0.0)(data), data)


# ---- kernels, erasing, noise ----------------------------------------------------------

def _filter_reference(x, k):
    """Plain loops: reflect-pad, then correlate every pixel with the kernel k."""
    kh, kw = k.shape
    pad = np.pad(x, ((0, 0), (0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2)), mode="reflect")
    out = np.zeros_like(x)
    for i in range(x.shape[2]):
        for j in range(x.shape[3]):
            out[:, :, i, j] = (pad[:, :, i:i + kh, j:j + kw] * k).sum(axis=(2, 3))
    return out


def test_gaussian_blur_matches_the_2d_kernel():
    x = images((2, 2, 7, 9), dtype=np.float64)
    t = T.GaussianBlur((5, 3), sigma=(0.8, 1.7))
    params = t.sample_params(x.shape, gen())
    y = t.apply(x, params)
    for i, s in enumerate(params["sigma"]):
        g5 = np.exp(-0.5 * (np.arange(-2, 3) / s) ** 2)
        g3 = np.exp(-0.5 * (np.arange(-1, 2) / s) ** 2)
        k = np.outer(g5 / g5.sum(), g3 / g3.sum())              # (kh, kw) = (5, 3)
        assert_close(y[i:i + 1], _filter_reference(x[i:i + 1], k), atol=1e-12)
    flat = np.full((1, 1, 6, 6), 0.3)
    assert_close(t(flat), flat, atol=1e-12)


def test_sharpen_factor_one_is_identity_and_border_is_kept():
    x = images((2, 3, 6, 7))
    assert_close(T.Sharpen(1.0)(x), x, atol=1e-6)
    y = T.Sharpen(2.0)(x)
    assert_close(y[:, :, 0], x[:, :, 0], atol=1e-6)
    assert_close(y[:, :, :, -1], x[:, :, :, -1], atol=1e-6)
    smooth = filter2d(x.astype(np.float64), np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]]) / 13)
    expected = np.clip(2 * x - smooth, 0, 1)
    assert_close(y[:, :, 1:-1, 1:-1], expected[:, :, 1:-1, 1:-1], atol=1e-6)


def test_random_erasing_erases_one_box():
    x = images((50, 3, 16, 16)) + 1.0                           # no pixel equals 0
    t = T.RandomErasing(p=1.0, scale=(0.05, 0.2), ratio=(0.5, 2.0), value=0)
    params = t.sample_params(x.shape, gen())
    y = t.apply(x, params)
    for i in range(50):
        top, left, h, w = (int(v) for v in params["box"][i])
        erased = y[i, 0] == 0
        assert erased.sum() == h * w == (y[i] == 0).sum() / 3
        assert erased[top:top + h, left:left + w].all()
        assert 0.05 * 256 - 8 <= h * w <= 0.2 * 256 + 8
    assert_close(T.RandomErasing(p=0.0)(x), x)


def test_cutout_is_clipped_at_the_border():
    x = np.ones((400, 1, 10, 10), np.float32)
    y = T.Cutout(4)(x, generator=gen())
    holes = (y == 0).sum(axis=(1, 2, 3))
    assert holes.max() == 16 and holes.min() < 16 and holes.min() >= 4


def test_gaussian_noise():
    x = np.full((4, 3, 32, 32), 0.5, np.float32)
    y = T.GaussianNoise(0.1)(x, generator=gen())
    assert abs(float((y - x).std()) - 0.1) < 0.005 and abs(float((y - x).mean())) < 0.005
    assert_close(T.GaussianNoise(0.0)(x), x)
    assert T.GaussianNoise(5.0)(x).max() <= 1.0


# ---- composition and normalisation --------------------------------------------------

def test_normalize_then_inverse_is_the_identity(device):
    x = images((4, 3, 5, 5), device=device)
    norm = T.Normalize((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))
    y = norm(x)
    assert_close(np_(y)[:, 1], (np_(x)[:, 1] - 0.48) / 0.24, rtol=1e-5, atol=1e-6)
    assert_close(norm.inverse(y), x, atol=1e-6)
    assert y.dtype == np.float32


def test_to_float():
    x = np.array([[[0, 51, 255]]], np.uint8)
    np.testing.assert_array_equal(T.ToFloat()(x), np.array([[[0.0, 0.2, 1.0]]], np.float32))
    assert T.ToFloat("float64")(x).dtype == np.float64


def test_compose_params_and_output_shape():
    t = T.Compose([T.RandomCrop(10, padding=1), T.Resize((5, 6)), T.RandomHorizontalFlip()])
    x = images((3, 3, 12, 12))
    assert t.output_shape(x.shape) == (3, 3, 5, 6)
    params = t.sample_params(x.shape, gen(2))
    assert_close(t.apply(x, params), t(x, generator=gen(2)))
    step = x
    for sub, p in zip(t.transforms, params):
        step = sub.apply(step, p)
    assert_close(t.apply(x, params), step)


# ---- MixUp and CutMix ----------------------------------------------------------------

def test_cutmix_label_weights_equal_the_pasted_share():
    n = 8
    x = np.broadcast_to(np.arange(n, dtype=np.float32)[:, None, None, None],
                        (n, 3, 10, 14)).copy()        # each sample one distinct value
    labels = np.arange(n) % 5
    for seed in range(20):
        cm = T.CutMix(alpha=1.0, num_classes=5)
        params = cm.sample_params(x.shape, gen(seed))
        y, soft = cm.apply(x, labels, params)
        perm = params["perm"]
        for i in range(n):
            pasted = (y[i] == perm[i]).mean() if perm[i] != i else \
                params["box"][2] * params["box"][3] / 140
            own = 1 - pasted
            expected = np.zeros(5)
            expected[labels[i]] += own
            expected[labels[perm[i]]] += pasted
            assert_close(soft[i], expected, atol=1e-6)
        assert_close(soft.sum(axis=1), np.ones(n), atol=1e-6)


def test_mixup_with_lambda_one_is_the_identity():
    x, labels = images((6, 3, 4, 4)), np.array([0, 1, 2, 0, 1, 2])
    mix = T.MixUp(alpha=0.4, num_classes=3)
    params = mix.sample_params(x.shape, gen())
    y, soft = mix.apply(x, labels, dict(params, lam=1.0))
    assert_close(y, x)
    assert_close(soft, np.eye(3)[labels])
    y, soft = mix.apply(x, labels, params)
    lam, perm = params["lam"], params["perm"]
    assert 0 < lam < 1
    assert_close(y, lam * x + (1 - lam) * x[perm], rtol=1e-5)
    assert_close(soft, lam * np.eye(3)[labels] + (1 - lam) * np.eye(3)[labels[perm]],
                 rtol=1e-5, atol=1e-7)


def test_mixing_on_tensors_and_soft_labels():
    x = md.tensor(images((4, 1, 4, 4)))
    y, soft = T.MixUp(1.0, 3)(x, md.tensor(np.array([0, 1, 2, 1])))
    assert isinstance(y, md.Tensor) and soft.shape == (4, 3)
    y2, soft2 = T.CutMix(1.0, 3)(y.data, soft.data)          # soft labels in, soft out
    assert_close(soft2.sum(axis=1), np.ones(4), atol=1e-6)


def test_mixing_bad_input():
    x = images((4, 3, 4, 4))
    with pytest.raises(ValueError, match=r"CutMix: labels must be in \[0, 3\)"):
        T.CutMix(1.0, 3)(x, np.array([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="MixUp: 3 labels for a batch of 4"):
        T.MixUp(1.0, 3)(x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="MixUp: expected an NCHW batch"):
        T.MixUp(1.0, 3)(x[0], np.array([0]))
    with pytest.raises(ValueError, match="alpha must be a positive"):
        T.MixUp(0.0, 3)
    with pytest.raises(ValueError, match="num_classes"):
        T.CutMix(1.0, None)


# ---- bad input -----------------------------------------------------------------------

@pytest.mark.parametrize("t", ALL, ids=IDS)
def test_wrong_ndim_is_a_clear_error(t):
    with pytest.raises(ValueError, match=r"expected a CHW image or an NCHW batch \(ndim 3 "
                                         r"or 4\), got ndim 2 \(shape \(8, 8\)\)"):
        t(np.zeros((8, 8), np.float32))


def test_not_an_array_and_integer_input():
    with pytest.raises(TypeError, match="ColorJitter: expected a NumPy or CuPy array"):
        T.ColorJitter(0.1)([[[0.0]]])
    with pytest.raises(TypeError, match="GaussianBlur: expected a float image"):
        T.GaussianBlur(3)(np.zeros((3, 4, 4), np.uint8))


@pytest.mark.parametrize("make,match", [
    (lambda: T.ColorJitter(saturation=0.5), "ColorJitter: saturation need 3 channels"),
    (lambda: T.ColorJitter(hue=0.1), "ColorJitter: hue need 3 channels"),
    (lambda: T.Grayscale(), "Grayscale: RGB to grey needs 3 channels, got 1"),
    (lambda: T.RandomGrayscale(), "RandomGrayscale: RGB to grey needs 3 channels"),
    (lambda: T.PCALighting(), "PCALighting: PCA lighting needs 3 channels, got 1"),
    (lambda: T.Normalize((0.5, 0.5, 0.5), 0.2), "Normalize: mean has 3 values but the "
                                                "input has 1 channels"),
])
def test_colour_transforms_reject_wrong_channel_counts(make, match):
    with pytest.raises(ValueError, match=match):
        make()(images((2, 1, 4, 4)))


@pytest.mark.parametrize("make", [
    lambda p: T.RandomHorizontalFlip(p), lambda p: T.RandomVerticalFlip(p),
    lambda p: T.RandomPerspective(p=p), lambda p: T.RandomGrayscale(p),
    lambda p: T.AutoContrast(p=p), lambda p: T.Equalize(p=p), lambda p: T.Solarize(p=p),
    lambda p: T.Sharpen(p=p), lambda p: T.RandomErasing(p=p), lambda p: T.Cutout(3, p=p),
    lambda p: T.GaussianNoise(p=p), lambda p: T.RandomApply(T.Solarize(), p=p),
])
@pytest.mark.parametrize("p", [1.5, -0.1, "0.5"])
def test_probability_outside_unit_interval(make, p):
    with pytest.raises(ValueError, match=r"p must be a probability in \[0, 1\], got"):
        make(p)


def test_bad_arguments():
    with pytest.raises(ValueError, match="ColorJitter: hue must be in"):
        T.ColorJitter(hue=0.7)
    with pytest.raises(ValueError, match="ColorJitter: brightness must be non-negative"):
        T.ColorJitter(brightness=-1)
    with pytest.raises(ValueError, match="GaussianBlur: kernel_size must be a positive odd"):
        T.GaussianBlur(4)
    with pytest.raises(ValueError, match="RandomCrop: padding_mode"):
        T.RandomCrop(4, padding_mode="wrap")
    with pytest.raises(ValueError, match="RandomRotation: degrees must be"):
        T.RandomRotation((30, 10))
    with pytest.raises(ValueError, match="RandomRotation: interpolation"):
        T.RandomRotation(10, interpolation="bicubic")
    with pytest.raises(ValueError, match="Normalize: std must be non-zero"):
        T.Normalize(0.5, 0.0)
    with pytest.raises(TypeError, match="Compose: transforms\\[1\\] must be a minidl"):
        T.Compose([T.RandomHorizontalFlip(), T.MixUp(1.0, 3)])
    with pytest.raises(ValueError, match="RandomApply: the inner CenterCrop changes"):
        T.RandomApply(T.CenterCrop(2))(images((1, 4, 4)))


def test_params_for_another_batch_size():
    t = T.RandomCrop(4, padding=1)
    params = t.sample_params((3, 1, 4, 4), gen())
    with pytest.raises(ValueError, match="RandomCrop: params are for a batch of 3 but the "
                                         "input has 5 samples"):
        t.apply(images((5, 1, 4, 4)), params)


@pytest.mark.slow
def test_rotation_matrix_is_orthonormal_for_many_angles():
    a = gen().uniform(-360, 360, 1000)
    m = np.linalg.inv(rotation_matrix(a, 9, 9))[:, :2, :2]
    assert_close(m @ np.transpose(m, (0, 2, 1)), np.broadcast_to(np.eye(2), m.shape),
                 atol=1e-12)
