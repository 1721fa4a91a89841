"""Small helpers several test modules share."""
import hashlib
import os


def snapshot(directory):
  """{relative path: sha256} of every file below `directory`, dot-prefixed entries too."""
  out = {}
  for root, _, files in os.walk(directory):
    for name in files:
      path = os.path.join(root, name)
      with open(path, "rb") as f:
        out[os.path.relpath(path, directory)] = hashlib.sha256(f.read()).hexdigest()
  return out
