"""Optional persistence of the simulator's state in one JSON file.

The file holds what a restarted simulator needs to agree with a server whose
database survived: the accounts (secrets included), balances, bets, the bet id
counter, and the stake mode, win probability and repeat_win. Not the fault rules,
call counts, seed or RNG state. Money is stored as decimal strings; the file is
one line of JSON, shown here indented::

    {
      "format": "provider-simulator-state",
      "format_version": 1,
      "config": {"stake_mode": "debit_on_loss", "win_probability": 0.5,
                 "repeat_win": "refuse"},
      "next_bet_id": 3,
      "accounts": [{"user_id": "1001", "username": "demo1",
                    "secret": "demo-secret-1001", "balance": "106"}],
      "bets": [{"id": "1", "user_id": "1001", "stake": "3",
                "stake_mode": "debit_on_loss", "status": "won", "win": "6"},
               {"id": "2", "user_id": "1001", "stake": "2",
                "stake_mode": "debit_on_loss", "status": "open", "win": null}]
    }

The stakes an account has held and unsettled are recomputed from its open bets.
A background thread saves the state soon after every change: at once when idle, at
most every ``interval`` seconds under load (longer for a state so big that writing
it takes more than a fifth of that), and a last time on ``close()``. Every
save is atomic (a temporary file in the same directory, fsync, ``os.replace``), and
the file is created readable by its owner only.
"""

import contextlib
import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

from provider.simulator.state import ProviderState

logger = logging.getLogger(__name__)

SAVE_INTERVAL = 0.2  # seconds: about the most a crash (not a clean stop) loses


class StateFileError(ValueError):
    """The state file cannot be read, understood or written; names the file."""


class StateStore:
    """Loads ``state`` from ``path`` and keeps the file up to date."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        state: ProviderState,
        *,
        interval: float = SAVE_INTERVAL,
    ) -> None:
        self.path = Path(path)
        self._state = state
        self._interval = interval
        self._lock = threading.Lock()  # one save or reset at a time
        self._saved_version = state.version
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def load(self) -> bool:
        """Load the file into the state if it exists; answers whether it did.

        Raises ``StateFileError`` for a file that cannot be read or is not a valid
        state, and for a directory that does not exist.
        """
        if not self.path.parent.is_dir():
            raise StateFileError(
                f"cannot keep the simulator state in {self.path}: "
                f"the directory {self.path.parent} does not exist"
            )
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StateFileError(
                f"cannot read the simulator state file {self.path}: {exc}"
            ) from exc
        try:
            self._state.import_data(json.loads(raw))
        except (ValueError, TypeError, RecursionError) as exc:
            raise StateFileError(
                f"the simulator state file {self.path} is corrupt or invalid ({exc}); "
                "fix it, or delete it (--reset-state) to start empty"
            ) from exc
        with self._lock:
            self._saved_version = self._state.version
        return True

    def save(self) -> bool:
        """Write the state if it changed since the last save; answers whether it
        wrote. Raises ``OSError`` when the file cannot be written."""
        with self._lock:
            version, data = self._state.export_data()
            if version == self._saved_version:
                return False
            # Compact, so that the C encoder writes it: indenting is several
            # times slower on a state with many bets.
            text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
            self._write(text.encode() + b"\n")
            self._saved_version = version
            return True

    def reset(self) -> None:
        """Reset the state (``ProviderState.reset``) and delete the file."""
        with self._lock:
            version = self._state.reset()
            self.path.unlink(missing_ok=True)
            self._saved_version = version

    def _write(self, content: bytes) -> None:
        directory = self.path.parent
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=directory
        )
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(content)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        _fsync_directory(directory)

    # --- the background saver ---------------------------------------------------------

    def start(self) -> None:
        """Save from a daemon thread after every change, until ``close()``."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run,
                name=f"provider-simulator-state-{self.path.name}",
                daemon=True,
            )
            self._thread.start()

    def _run(self) -> None:
        changed = self._state.changed
        while True:
            changed.wait()
            if self._stopping.is_set():
                return
            changed.clear()  # before saving: a change during the save comes again
            started = time.monotonic()
            try:
                wrote = self.save()
            except OSError:
                wrote = True  # not quite, but wait before trying again
                changed.set()
                if not self._failing:
                    logger.exception(
                        "Provider simulator: cannot save its state to %s", self.path
                    )
                self._failing = True
            else:
                if self._failing:
                    logger.warning("Provider simulator: saving to %s again", self.path)
                self._failing = False
            # At most one write per interval, and at most a fifth of the time spent
            # writing (a big state under load); with nothing written, wait for a
            # change.
            pause = max(self._interval, 4 * (time.monotonic() - started))
            if wrote and self._stopping.wait(pause):
                return

    def close(self) -> None:
        """Stop the background saver and save the last changes; raises
        ``StateFileError`` when they cannot be written."""
        self._stopping.set()
        self._state.changed.set()  # wake the saver so that it sees the stop
        if self._thread is not None:
            self._thread.join()
        try:
            self.save()
        except OSError as exc:
            raise StateFileError(
                f"cannot save the simulator state to {self.path}: {exc}"
            ) from exc


def _fsync_directory(directory: Path) -> None:
    # Makes the rename durable; not every platform can open a directory.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
