"""Stop signals: SIGTERM and SIGINT end a run cleanly, at a step boundary, with a checkpoint.

A preempted VM or a cluster scheduler sends SIGTERM and kills the process some seconds later;
the default action would lose every step since the last checkpoint. Inside `StopSignals` the
first signal only sets a flag: the step in flight finishes, the loop saves a checkpoint and
raises `TrainingInterrupted` (exit code 128 + the signal number). Under multi-worker the flag
rides along with each step's all-reduce (`steps.DistributedSteps`), so every worker stops and
saves at the same step.
"""

from __future__ import annotations

import os
import signal
import threading

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(Exception):
    """Raised by `train` when a stop signal ended it; the checkpoint at `step` is saved.

    Attributes:
        signal_name: "SIGTERM", "SIGINT", or "a stop signal on another worker".
        step: the step of the saved checkpoint (the run resumes from it).
        total_steps: the run's total.
        checkpoint: the saved checkpoint's path.
        exit_code: 128 + the signal number, the shell's code for a process ended by it.
    """

    def __init__(self, signal_name, signum, step, total_steps, checkpoint):
        self.signal_name = signal_name
        self.step = step
        self.total_steps = total_steps
        self.checkpoint = checkpoint
        self.exit_code = 128 + signum
        super().__init__(
            f"Stopped by {signal_name} at step {step} of {total_steps}; checkpoint {checkpoint}. "
            "Run the same command again to resume."
        )


class StopSignals:
    """SIGTERM / SIGINT become a request that the loop honours at the next step boundary.

    The handlers in place before are restored at the first signal, so a second one stops the
    process the usual way, and on exit. Signal handlers can only be set from the main thread;
    elsewhere this does nothing.
    """

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum
        self._restore()
        # os.write: print() from a handler can hit a half-written stdout buffer.
        os.write(
            2,
            f"\n{signal.Signals(signum).name} received: saving a checkpoint after the current "
            "step, then stopping (send it again to stop at once).\n".encode(),
        )

    def _restore(self):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def __exit__(self, *exc):
        self._restore()

    @property
    def requested(self) -> float:
        """1.0 once a signal came, else 0.0: the flag each step sums over the workers."""
        return 0.0 if self.signum is None else 1.0

    def interrupted(self, step: int, total_steps: int, checkpoint: str) -> TrainingInterrupted:
        """The exception for a stop at `step` (the signal came here or on another worker)."""
        if self.signum is None:
            return TrainingInterrupted(
                "a stop signal on another worker", signal.SIGTERM, step, total_steps, checkpoint
            )
        name = signal.Signals(self.signum).name
        return TrainingInterrupted(name, self.signum, step, total_steps, checkpoint)
