"""The networks' size by device: the authors' on CUDA unless the user set the network, by `size`."""

import pytest

from inrcore.errors import ConfigError
from inrcore.settings import config_from_dict
from inrcore.shapespace.settings import AutoDecoderConfig, DecoderConfig, OccNetConfig, ShapeSpaceConfig


def test_auto_takes_the_papers_decoder_on_cuda_only():
    config = AutoDecoderConfig()
    assert config.for_device("cpu") == config
    on_gpu = config.for_device("cuda")
    assert on_gpu.decoder == DecoderConfig.paper() and (on_gpu.decoder.width, on_gpu.decoder.latent) == (512, 256)
    assert on_gpu.lr_decoder == config.lr_decoder and on_gpu.size == "auto"  # only the network changes


def test_a_decoder_the_user_set_is_kept_under_auto():
    config = config_from_dict(AutoDecoderConfig, {"decoder": {"width": 64}})
    assert config.for_device("cuda").decoder.width == 64


@pytest.mark.parametrize("size, device, width", [("paper", "cpu", 512), ("cpu", "cuda", 128), ("auto", "mps", 128)])
def test_size_forces_either_network(size, device, width):
    assert config_from_dict(AutoDecoderConfig, {"size": size}).for_device(device).decoder.width == width


def test_occnet_takes_the_papers_sizes_and_keeps_its_other_fields():
    config = config_from_dict(OccNetConfig, {"lr": 1e-3, "n_points": 500})
    on_gpu = config.for_device("cuda")
    assert (on_gpu.hidden, on_gpu.code, on_gpu.decoder_hidden, on_gpu.blocks, on_gpu.batch) == (512, 512, 256, 5, 64)
    assert (on_gpu.lr, on_gpu.n_points) == (1e-3, 500)
    assert config.for_device("cpu") == config
    assert config_from_dict(OccNetConfig, {"hidden": 64}).for_device("cuda").hidden == 64


def test_a_bad_size_is_refused_by_name():
    with pytest.raises(ConfigError, match=r"training\.size.*auto, cpu, paper"):
        config_from_dict(ShapeSpaceConfig, {"training": {"size": "huge"}})
