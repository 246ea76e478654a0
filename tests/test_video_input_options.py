"""VideoConfig.input_centering and .spatial_pool: values, space-to-depth, both backbones and their deflated nets."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from train_helpers import randomise_bn_, single_thread

from mmv.config import NormConfig, VideoConfig
from mmv.deflation import deflate, inflate
from mmv.models.layers import center_colours, spatial_pool
from mmv.models.s3d import S3DG, space_to_depth
from mmv.models.tsm_resnet import TSMResNet

NORM = NormConfig()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    single_thread()


def _nets(**options) -> list[torch.nn.Module]:
    torch.manual_seed(0)
    # S3D-G cut after Mixed_3c as in the demo: a 4 x 4 grid at 32 px, where the mean and the max differ.
    s3d = VideoConfig(backbone="s3d", num_frames=8, frame_size=32, width_mult=0.125, s3d_final_endpoint="Mixed_3c")
    nets = [
        S3DG(dataclasses.replace(s3d, **options), NORM).eval(),
        TSMResNet(VideoConfig(backbone="tsm_resnet", width_mult=0.125, **options), NORM).eval(),
    ]
    for net in nets:
        randomise_bn_(net)  # random running statistics and affine parameters: BN is not the identity
    return nets


def test_center_colours_removes_each_examples_mean_colour():
    x = torch.rand(3, 4, 6, 5, 3) + torch.tensor([0.0, 1.0, 2.0])  # [B, T, H, W, 3], per-colour offsets
    y = center_colours(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y.mean(dim=(1, 2, 3)), torch.zeros(3, 3), atol=1e-6, rtol=0)
    # Naive reference: each (example, colour) minus its own mean.
    for b in range(3):
        for c in range(3):
            torch.testing.assert_close(y[b, ..., c], x[b, ..., c] - x[b, ..., c].mean())
    # A second example does not change the first one's result.
    torch.testing.assert_close(center_colours(x[:1]), y[:1])


def test_center_colours_commutes_with_space_to_depth():
    # The folded channels hold colour c % 3, so centering a folded clip equals folding the centred clip.
    x = torch.rand(2, 4, 6, 8, 3)
    torch.testing.assert_close(center_colours(space_to_depth(x)), space_to_depth(center_colours(x)))
    with pytest.raises(ValueError, match="multiple of 3"):
        center_colours(torch.rand(2, 4, 4, 4))


def test_spatial_pool_modes_and_bad_mode():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).view(2, 3, 4, 5)
    torch.testing.assert_close(spatial_pool(x, "mean"), x.flatten(2).mean(-1))
    torch.testing.assert_close(spatial_pool(x, "max"), x[:, :, -1, -1])
    with pytest.raises(ValueError, match="mode"):
        spatial_pool(x, "median")


def test_config_rejects_an_unknown_pool():
    with pytest.raises(ValueError, match="spatial_pool"):
        VideoConfig(spatial_pool="sum").validate()


@pytest.mark.parametrize("index", [0, 1], ids=["s3d", "tsm"])
def test_centering_makes_the_network_blind_to_a_colour_offset(index):
    plain, centred = _nets()[index], _nets(input_centering=True)[index]
    clip = torch.rand(2, 8, 32, 32, 3)
    shifted = clip + torch.tensor([0.2, -0.1, 0.3])
    with torch.no_grad():
        torch.testing.assert_close(centred(shifted), centred(clip), rtol=1e-4, atol=1e-5)
        stem = plain.ENDPOINTS[0]  # a random deep net shrinks the offset's effect layer by layer: look at the stem
        assert not torch.allclose(plain(shifted, stem), plain(clip, stem), atol=1e-2)
        # Same weights: the centred net is the plain net on the centred clip.
        torch.testing.assert_close(centred(clip), plain(center_colours(clip)), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("index", [0, 1], ids=["s3d", "tsm"])
def test_max_pool_is_the_max_over_space_of_the_time_mean(index):
    net = _nets(spatial_pool="max")[index]
    last = net.ENDPOINTS[-2]
    clip = torch.rand(2, 8, 64, 64, 3)  # a grid of 8 x 8 (S3D-G cut after Mixed_3c) and 2 x 2 (TSM) at the end
    with torch.no_grad():
        ends = net.extract_endpoints(clip)
    feature_map = ends[last]  # [B, T', H', W', C]
    expected = feature_map.mean(dim=1).amax(dim=(1, 2))
    torch.testing.assert_close(ends["Embeddings"], expected)
    assert ends["Embeddings"].shape == (2, net.output_dim)
    assert not torch.allclose(expected, feature_map.mean(dim=(1, 2, 3)), atol=1e-4)


@pytest.mark.parametrize("index", [0, 1], ids=["s3d", "tsm"])
def test_deflated_net_centres_and_pools_like_its_video_net(index):
    # A static clip's mean colour is its frame's, and on an (almost) interior static clip the time mean is the frame:
    # the deflated image embedding stays close to the inflated one with both options on.
    net = _nets(input_centering=True, spatial_pool="max")[index]
    image = torch.rand(2, 32, 32, 3)
    with torch.no_grad():
        inflated = net(inflate(image, 33 if index else 8))
        tower = deflate(net, own_bn=False)
        deflated = tower(image)
        shifted = tower(image + torch.tensor([0.1, 0.2, -0.1]))
    torch.testing.assert_close(shifted, deflated, rtol=1e-4, atol=1e-5)  # centring is applied to images too
    cos = torch.nn.functional.cosine_similarity(inflated, deflated, dim=-1)
    assert float(cos.min()) > 0.95, cos
    if index == 1:  # TSM with T = 33: the centre frames never see the padding, the time mean is almost the frame
        last = net.ENDPOINTS[-2]
        with torch.no_grad():
            frame = deflate(net, own_bn=False)(image, final_endpoint=last)
        torch.testing.assert_close(deflated, frame.amax(dim=(1, 2)))
