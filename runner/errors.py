"""The error types a user can cause, each with the exit code of the design's contract."""

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
