"""The error types a user can cause, each with the exit code of the design's contract."""

import signal

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_DATA = 3
EXIT_TRAINING = 4
EXIT_ENVIRONMENT = 5
EXIT_INTERRUPTED = 130
EXIT_PREEMPTED = 143


class DlrunError(Exception):
    """A failure explained to the user in a few lines, without a traceback."""

    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class ConfigError(DlrunError):
    """Bad spec, override or command line; `problems` holds one line per problem."""

    exit_code = EXIT_CONFIG

    def __init__(self, problems):
        problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(problems))
        self.problems = problems


class DataError(DlrunError):
    exit_code = EXIT_DATA


class TrainingError(DlrunError):
    exit_code = EXIT_TRAINING


class EnvironmentProblem(DlrunError):
    """The run environment is unusable: a locked run directory, a full disk, no valid backup."""

    exit_code = EXIT_ENVIRONMENT


SIGNAL_NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}


class Preempted(DlrunError):
    """Training stopped on a signal after writing a backup; exit 143 (SIGTERM) or 130 (SIGINT)."""

    def __init__(self, signum: int, epoch: int, step: int, global_step: int, folder):
        self.signum, self.epoch, self.step, self.global_step = signum, epoch, step, global_step
        self.exit_code = EXIT_PREEMPTED if signum == signal.SIGTERM else EXIT_INTERRUPTED
        self.folder = folder
        super().__init__(self._text(folder.parent if folder is not None else None))

    def resume_at(self, run_dir) -> "Preempted":
        """Name `run_dir` as the directory to resume (k-fold: the parent, which finishes every fold)."""
        self.message = self._text(run_dir)
        self.args = (self.message,)
        return self

    def _text(self, run_dir) -> str:
        where = (f"stopped in epoch {self.epoch + 1} after step {self.step}" if self.step
                 else f"stopped after epoch {self.epoch}")
        where += f" (global step {self.global_step})"
        name = SIGNAL_NAMES.get(self.signum, self.signum)
        if self.folder is None:
            return f"dlrun: {name}: {where}; callbacks.backup is null, so there is no backup to resume from"
        return f"dlrun: {name}: {where} with a backup in {self.folder}; continue with `dlrun resume {run_dir}`"
