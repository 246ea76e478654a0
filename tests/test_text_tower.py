"""The text tower: max over words ignoring padding, frozen word vectors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmv.config import TextConfig
from mmv.models.text import TextTower

# ---------------------------------------------------------------------------------------------------
# Text tower
# ---------------------------------------------------------------------------------------------------


def _cfg(**kw) -> TextConfig:
    base = {"vocab_size": 10, "word_dim": 3, "sentence_dim": 5, "max_words": 4}
    base.update(kw)
    return TextConfig(**base)


def test_text_tower_shapes() -> None:
    tower = TextTower(_cfg())
    assert tower.output_dim == 5
    ids = torch.randint(0, 10, (2, 4))
    assert tuple(tower(ids).shape) == (2, 5)
    assert tuple(tower(torch.randint(0, 10, (2, 3, 4))).shape) == (2, 3, 5)
    with pytest.raises(ValueError, match=r"\(4,\)"):
        tower(torch.zeros(4, dtype=torch.long))
    assert torch.equal(tower.embedding.weight[0], torch.zeros(3))


def test_text_tower_vectors_set_vocab_and_check_dim() -> None:
    vectors = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    tower = TextTower(_cfg(vocab_size=1000), vectors)
    assert tower.vocab_size == 7 and tower.embedding.num_embeddings == 7
    assert torch.equal(tower.embedding.weight, torch.from_numpy(vectors))
    with pytest.raises(ValueError, match=r"TextConfig\.word_dim"):
        TextTower(_cfg(word_dim=4), vectors)


def test_text_tower_max_ignores_padding() -> None:
    # word_dim 2 -> sentence_dim 2 with identity weights and bias 0: features are ReLU(word vector).
    vectors = torch.tensor([[9.0, 9.0], [0.0, 0.0], [1.0, -1.0], [3.0, 0.5], [-2.0, 2.0]])
    tower = TextTower(_cfg(vocab_size=5, word_dim=2, sentence_dim=2), vectors)
    with torch.no_grad():
        tower.linear.weight.copy_(torch.eye(2))
        tower.linear.bias.zero_()
    ids = torch.tensor([[2, 3, 0, 0], [4, 0, 0, 0], [0, 0, 0, 0]])
    out = tower(ids)
    # The pad row (9, 9) would win an unmasked max; it must not.
    expected = torch.tensor([[3.0, 0.5], [0.0, 2.0], [0.0, 0.0]])
    torch.testing.assert_close(out, expected)
    bag = tower(ids.unsqueeze(0))
    torch.testing.assert_close(bag, expected.unsqueeze(0))


def test_all_padding_gives_zero_even_with_positive_bias() -> None:
    tower = TextTower(_cfg())
    with torch.no_grad():
        tower.linear.bias.fill_(1.0)
    out = tower(torch.zeros(2, 3, 4, dtype=torch.long))
    assert torch.equal(out, torch.zeros(2, 3, 5))


def test_pool_padding_takes_the_max_over_every_position_as_the_released_models() -> None:
    torch.manual_seed(0)
    table = torch.randn(10, 3)
    table[0] = torch.tensor([4.0, 4.0, 4.0])  # a large row 0, so padding wins the max somewhere
    masked, unmasked = TextTower(_cfg(), table), TextTower(_cfg(pool_padding=True), table)
    unmasked.linear.load_state_dict(masked.linear.state_dict())
    ids = torch.tensor([[3, 5, 0, 0], [0, 0, 0, 0]])
    hidden = torch.relu(table[ids] @ masked.linear.weight.T + masked.linear.bias)  # [2, 4, 5] naive reference
    torch.testing.assert_close(unmasked(ids), hidden.amax(dim=1))
    torch.testing.assert_close(masked(ids)[0], hidden[0, :2].amax(dim=0))
    assert not torch.equal(unmasked(ids)[0], masked(ids)[0]) and masked(ids)[1].abs().sum() == 0


def test_frozen_vectors_get_no_gradient() -> None:
    tower = TextTower(_cfg(freeze_word_vectors=True))
    assert not tower.embedding.weight.requires_grad
    tower.requires_grad_(True)  # even if someone unfreezes the whole model, the lookup stays detached
    tower(torch.tensor([[2, 3, 0, 0]])).sum().backward()
    assert tower.embedding.weight.grad is None
    assert tower.linear.weight.grad is not None and tower.linear.weight.grad.abs().sum() > 0


def test_trainable_vectors_get_gradient_on_used_rows_only() -> None:
    tower = TextTower(_cfg(freeze_word_vectors=False))
    assert tower.embedding.weight.requires_grad
    with torch.no_grad():
        tower.linear.bias.fill_(10.0)  # every ReLU active, so every used row gets a gradient
    tower(torch.tensor([[2, 5, 0, 0], [7, 0, 0, 0]])).sum().backward()
    grad = tower.embedding.weight.grad
    assert grad is not None
    used = grad.abs().sum(dim=1) > 0
    assert used.nonzero().flatten().tolist() == [2, 5, 7]
