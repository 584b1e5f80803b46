import pytest
import torch

from amploop.errors import ConfigError
from amploop.models.zoo import ModelSpec, build_model, count_parameters

TABLE = ModelSpec(n_numeric=6, cardinalities=(10, 4, 3), n_outputs=2)
IMAGE = ModelSpec(image_shape=(1, 28, 28), n_outputs=10)


def _table_batch(n=5):
    return {"numeric": torch.randn(n, 6), "categorical": torch.randint(0, 3, (n, 3))}


@pytest.mark.parametrize("name", ["mlp", "tabular"])
def test_table_models(name):
    assert build_model(name, TABLE)(_table_batch()).shape == (5, 2)


@pytest.mark.parametrize(
    ("name", "options"), [("cnn", {}), ("resnet", {"width": 8}), ("resnet", {"depth": 50, "width": 4})]
)
def test_image_models(name, options):
    assert build_model(name, IMAGE, options)({"image": torch.rand(3, 1, 28, 28)}).shape == (3, 10)


def test_gpt_124m_has_gpt2_parameter_count():
    spec = ModelSpec(vocab_size=50304, block_size=1024, n_outputs=50304)
    model = build_model("gpt", spec, {"n_layer": 12, "n_head": 12, "n_embd": 768})
    assert 124_000_000 < count_parameters(model) < 125_000_000  # tied embeddings counted once
    tiny = build_model("gpt", ModelSpec(vocab_size=50, block_size=8, n_outputs=50))
    assert tiny({"tokens": torch.randint(0, 50, (2, 8))}).shape == (2, 8, 50)


def test_unknown_model_and_option_are_config_errors():
    with pytest.raises(ConfigError, match="unknown model 'vit'; valid: mlp, tabular, cnn, resnet, gpt"):
        build_model("vit", TABLE)
    with pytest.raises(ConfigError, match="model 'mlp': .*unexpected keyword argument 'layers'"):
        build_model("mlp", TABLE, {"layers": 3})
    with pytest.raises(ConfigError, match="resnet depth 101 is not supported"):
        build_model("resnet", IMAGE, {"depth": 101})
    with pytest.raises(ConfigError, match="needs image data"):
        build_model("cnn", TABLE)
