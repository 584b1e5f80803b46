import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from amploop.config import AmploopConfig, ModelConfig, TrainConfig
from amploop.data import Dataset, load_builtin
from amploop.data.splits import prepare_splits
from amploop.errors import ConfigError, TrainingError
from amploop.train.fit import fit
from amploop.train.loop import train_model
from amploop.train.tensors import TrainData


class MyLogistic(nn.Module):
    """A user's own model: takes the same dict of tensors as the built-in ones."""

    def __init__(self, n_numeric: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_numeric, 2)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.linear(inputs["numeric"])


def test_a_users_own_module_trains_through_the_python_api():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 3))
    table = pd.DataFrame(x, columns=["a", "b", "c"])
    table["y"] = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int)
    dataset = Dataset.from_table("synthetic", table, target="y")
    config = AmploopConfig(train=TrainConfig(epochs=20, batch_size=64, learning_rate=0.05, precision="fp32"))
    result = fit(dataset, config, model=MyLogistic(3))
    assert result.architecture == "custom"
    assert result.options == {"class": f"{__name__}.MyLogistic"}
    assert result.metrics["test_accuracy"] > 0.95


def test_splits_use_the_datasets_own_test_rows_and_are_disjoint():
    adult = load_builtin("adult")
    plan = prepare_splits(adult, validation_fraction=0.1, test_fraction=0.2, seed=0)
    assert plan.test.n_rows == 16281 and plan.train.n_rows + plan.validation.n_rows == 32561
    assert plan.train.parents == (adult.fingerprint,)
    assert plan.train.fingerprint != plan.validation.fingerprint


def test_gradient_accumulation_matches_one_big_batch():
    torch.manual_seed(0)
    data = TrainData(
        {"numeric": torch.randn(512, 4), "categorical": torch.zeros(512, 0, dtype=torch.long)},
        torch.randint(0, 2, (512,)),
    )

    def run(batch: int, accumulation: int) -> list[float]:
        torch.manual_seed(1)
        model = _Linear()
        settings = TrainConfig(
            precision="fp32",
            epochs=1,
            batch_size=batch,
            gradient_accumulation_steps=accumulation,
            device="cpu",
            early_stopping_patience=None,
            max_grad_norm=None,
        )
        result = train_model(model, data, None, settings)
        return [p.detach().clone() for p in result.model.parameters()]

    whole, accumulated = run(128, 1), run(32, 4)
    for a, b in zip(whole, accumulated, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


class _Linear(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)

    def forward(self, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.linear(inputs["numeric"])


def test_non_finite_losses_stop_the_run_with_a_training_error(tmp_path):
    data = TrainData({"numeric": torch.full((256, 4), float("nan"))}, torch.randint(0, 2, (256,)))
    settings = TrainConfig(precision="fp32", epochs=5, batch_size=16, device="cpu", max_nonfinite_steps=3)
    with pytest.raises(TrainingError, match="loss was not finite for 3 steps in a row.*no checkpoint was saved"):
        train_model(_Linear(), data, None, settings, checkpoint_dir=str(tmp_path / "ck"))


def test_a_batch_larger_than_the_data_is_capped_not_refused():
    data = TrainData({"numeric": torch.randn(10, 4)}, torch.randint(0, 2, (10,)))
    result = train_model(_Linear(), data, None, TrainConfig(batch_size=64, epochs=3, device="cpu", precision="fp32"))
    assert result.batch_size == 10 and result.steps == 3 and result.samples_seen == 30
    assert "batch size 64 capped to 10 for 10 training rows" in result.notes


def test_too_few_rows_for_one_accumulated_step():
    data = TrainData({"numeric": torch.randn(3, 4)}, torch.randint(0, 2, (3,)))
    with pytest.raises(TrainingError, match="fewer than one step needs"):
        train_model(_Linear(), data, None, TrainConfig(gradient_accumulation_steps=4, device="cpu"))


def test_resume_without_a_checkpoint_is_an_error(tmp_path):
    data = TrainData({"numeric": torch.randn(64, 4)}, torch.randint(0, 2, (64,)))
    settings = TrainConfig(batch_size=16, device="cpu")
    with pytest.raises(TrainingError, match="--resume given but no complete checkpoint"):
        train_model(_Linear(), data, None, settings, resume=True, checkpoint_dir=str(tmp_path / "none"))


def test_table_model_on_images_is_refused():
    with pytest.raises(ConfigError, match="'mlp' is for tables but 'mnist5k' holds images"):
        fit(load_builtin("mnist5k"), AmploopConfig(model=ModelConfig(architecture="mlp"), train=TrainConfig(epochs=1)))
