"""Progress bars for the long steps (fine-tune epochs, search trials, the gate's evaluation).

Bars go to a terminal only: to `set_stream`'s stream (`bonsai run` points it at the terminal
while its logs go to a file), else to stderr, and tqdm turns them off when that is not a TTY
(a Vertex container, a CI log, a pipe).
"""
import sys
from typing import Dict, Optional

import tensorflow as tf
from tqdm import tqdm

_stream = None
_named: Dict[str, tqdm] = {}


def set_stream(stream) -> None:
  """Draws the bars on `stream` (None: sys.stderr at the time a bar starts)."""
  global _stream  # pylint: disable=global-statement
  _stream = stream


def bar(total: Optional[int], desc: str, unit: str, name: str = "") -> tqdm:
  """A bar of `total` steps (None: a counter), cleared when closed; `name` makes `tick` reach it."""
  made = tqdm(total=total, desc=desc, unit=unit, file=_stream or sys.stderr, leave=False,
              disable=None, dynamic_ncols=True, mininterval=0.5)
  if name:
    _named[name] = made
    close = made.close

    def close_and_forget():
      _named.pop(name, None)
      close()
    made.close = close_and_forget
  return made


def tick(name: str, steps: int = 1) -> None:
  """Advances the open bar called `name`; nothing when none is open (e.g. in another process)."""
  named = _named.get(name)
  if named is not None:
    named.update(steps)


class KerasBar(tf.keras.callbacks.Callback):
  """One bar over all training steps of a `fit`, with the epoch and `postfix(model)` beside it."""

  def __init__(self, desc: str, postfix=None):
    super().__init__()
    self._desc = desc
    self._postfix = postfix
    self._bar = None

  def on_train_begin(self, logs=None):
    steps, epochs = self.params.get("steps"), self.params.get("epochs") or 1
    self._bar = bar(steps * epochs if steps else None, self._desc, "step")

  def on_train_batch_end(self, batch, logs=None):
    self._bar.update(1)

  def on_epoch_end(self, epoch, logs=None):
    figures = {"epoch": f"{epoch + 1}/{self.params.get('epochs')}"}
    for key, label in (("val_accuracy", "eval_acc"), ("accuracy", "acc")):
      if key in (logs or {}):
        figures[label] = f"{logs[key]:.3f}"
        break
    if self._postfix is not None:
      figures.update(self._postfix(self.model))
    self._bar.set_postfix(figures)

  def on_train_end(self, logs=None):
    self._bar.close()
