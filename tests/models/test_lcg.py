import pytest
import torch

from moebius.errors import ModelInputError
from moebius.models.lcg import cfg_ids, lcg_ids


def test_conditional_ids_are_background_rows() -> None:
    ids = lcg_ids(3, conditional=True)
    assert ids.shape == (3, 10) and ids.dtype == torch.long
    assert ids[2].tolist() == list(range(10))


def test_unconditional_ids_are_foreground_rows() -> None:
    assert lcg_ids(2, conditional=False)[1].tolist() == list(range(10, 20))


def test_cfg_batch_is_uncond_then_cond() -> None:
    ids = cfg_ids(2)
    assert ids.shape == (4, 10)
    assert ids[:2].min() == 10 and ids[2:].max() == 9


def test_bad_batch_size() -> None:
    with pytest.raises(ModelInputError):
        lcg_ids(0, True)
