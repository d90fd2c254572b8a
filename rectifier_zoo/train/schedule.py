"""The learning rate at each step, and the plateau rule that lowers it (pure Python).

Sec. 2.3 "Training": the rate starts at 1e-2 and is divided by 10 "when the error plateaus",
twice. `lr_schedule="step"` switches at fixed epochs (`lr_boundaries`); `"plateau"` watches the
validation top-1 error. Both run after an optional linear warm-up.
"""

from __future__ import annotations

import typing

from rectifier_zoo import paper
from rectifier_zoo.train.config import Config, LrSchedule, ScheduleConfig

# Each switch divides the rate by 10 (1e-2 -> 1e-3 -> 1e-4).
LR_DIVISOR = round(paper.LEARNING_RATES[0] / paper.LEARNING_RATES[1])
# A validation error lower by less than this (0.1% absolute) is no improvement.
MIN_IMPROVEMENT = 1e-3


def learning_rate(config: Config, step: int, steps_per_epoch: int, plateau_drops: int) -> float:
    """The rate of `step` (0-based): the switches passed, the plateau drops, the warm-up."""
    schedule = config.schedule
    epoch = step / steps_per_epoch
    switches = sum(epoch >= boundary for boundary in schedule.lr_boundaries)
    rate = config.optimizer.learning_rate / LR_DIVISOR ** (switches + plateau_drops)
    if schedule.warmup_epochs > 0 and epoch < schedule.warmup_epochs:
        rate *= (step + 1) / (schedule.warmup_epochs * steps_per_epoch)
    return rate


class Plateau(typing.NamedTuple):
    """The plateau rule's state (checkpointed with the run)."""

    best_error: float = 2.0  # above any error: the first evaluation improves on it
    stale_evals: int = 0
    drops: int = 0


def after_validation(schedule: ScheduleConfig, state: Plateau, error: float) -> Plateau:
    """The state after a validation pass with top-1 `error`; `drops` grows by one on a plateau."""
    if schedule.lr_schedule != LrSchedule.PLATEAU:
        return state
    if error < state.best_error - MIN_IMPROVEMENT:
        return Plateau(error, 0, state.drops)
    stale = state.stale_evals + 1
    if stale >= schedule.plateau_patience and state.drops < schedule.max_lr_drops:
        return Plateau(state.best_error, 0, state.drops + 1)
    return Plateau(state.best_error, stale, state.drops)
