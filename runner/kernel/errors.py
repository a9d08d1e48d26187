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
        where = (f"stopped in epoch {epoch + 1} after step {step}" if step else f"stopped after epoch {epoch}")
        where += f" (global step {global_step})"
        if folder is None:
            super().__init__(f"dlrun: {SIGNAL_NAMES.get(signum, signum)}: {where}; callbacks.backup is null, so there is "
                             "no backup to resume from")
        else:
            super().__init__(f"dlrun: {SIGNAL_NAMES.get(signum, signum)}: {where} with a backup in {folder}; continue "
                             f"with `dlrun resume {folder.parent}`")
