"""The embedded default model: scikit-learn's digits and the seed tutorial's CNN."""
