"""Exact money splits: the parts always sum to the total, to the unit."""

from __future__ import annotations

import random
import uuid
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from foundry.money import Money, split_exact
from foundry.royalties.policy import Layer, pool_of, pro_rata


def test_one_hundred_thousand_random_splits_are_exact_and_fair():
    rng = random.Random(20261126)
    for _ in range(100_000):
        total = rng.choice([0, 1, 7, 99, 100, 12345, rng.randrange(10**9)])
        weights = {f"c{i}": rng.choice([0, 1, rng.randrange(1, 1000)]) for i in range(rng.randrange(1, 12))}
        if not any(weights.values()):
            weights["c0"] = 1
        parts = split_exact(total, weights)
        assert sum(parts.values()) == total
        weight_sum = sum(weights.values())
        for key, part in parts.items():
            exact = Fraction(total * weights[key], weight_sum)
            assert exact - 1 < part < exact + 1  # never more than one unit from the exact share
            if weights[key] == 0:
                assert part == 0


@given(st.integers(0, 10**12), st.dictionaries(st.text(max_size=5), st.integers(1, 10**6), min_size=1, max_size=20))
def test_split_is_independent_of_order(total, weights):
    reordered = dict(reversed(list(weights.items())))
    assert split_exact(total, weights) == split_exact(total, reordered)


def test_ties_go_to_the_smaller_key():
    assert split_exact(1, {"b": 1, "a": 1}) == {"a": 1, "b": 0}
    assert split_exact(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}


@pytest.mark.parametrize("total, weights", [(-1, {"a": 1}), (1.5, {"a": 1}), (10, {}), (10, {"a": 0}),
                                            (10, {"a": -1, "b": 2})])
def test_bad_splits_are_refused(total, weights):
    with pytest.raises(ValueError):
        split_exact(total, weights)


def test_money_is_integer_minor_units():
    with pytest.raises(TypeError):
        Money(1.5, "EUR")
    with pytest.raises(ValueError):
        Money(100, "euro")


def test_pro_rata_follows_asset_counts_and_layers():
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assert pro_rata(100, Layer({a: 3, b: 1})) == {a: 75, b: 25}
    layered = pro_rata(1000, Layer({a: 1, b: 1}), Layer({c: 5}), finetune_share=Fraction(3, 10))
    assert layered == {a: 350, b: 350, c: 300}
    # a fine-tune made only of brand assets (excluded: empty layer) leaves the whole pool to the base
    assert pro_rata(1000, Layer({a: 1}), Layer({}), finetune_share=Fraction(1, 2)) == {a: 1000}
    assert pro_rata(0, Layer({a: 1})) == {}
    assert pool_of(999, Fraction(1, 2)) == 499


def test_random_layered_pools_are_exact():
    rng = random.Random(7)
    for _ in range(2000):
        base = Layer({uuid.UUID(int=rng.randrange(1 << 64)): rng.randrange(1, 50) for _ in range(rng.randrange(1, 8))})
        tune = Layer({uuid.UUID(int=rng.randrange(1 << 64)): rng.randrange(0, 50) for _ in range(rng.randrange(0, 5))})
        pool = rng.randrange(10**7)
        parts = pro_rata(pool, base, tune, finetune_share=Fraction(rng.randrange(0, 11), 10))
        assert sum(parts.values()) == pool
