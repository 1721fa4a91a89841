"""Shared fixtures: the digits set, small trained models and TFX-style artifacts on disk."""
import os

import components  # noqa: F401  (Keras 2 before TensorFlow)
import numpy as np
import pytest


@pytest.fixture(scope="session")
def digits_arrays():
  from pipeline.models import digits
  return digits.load_digits_28()
