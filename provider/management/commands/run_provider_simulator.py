import logging
import signal
import threading
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from provider.simulator import DEMO_ACCOUNTS, STAKE_MODES, ProviderSimulator
from provider.simulator.persistence import StateFileError
from provider.simulator.state import REPEAT_WIN_MODES


class _StopOnSignal:
    """A SIGTERM or SIGINT handler: the first signal ends ``serve_forever`` as a
    Ctrl-C does; later ones (Ctrl-C then SIGTERM, say) are ignored, so that they
    cannot cut ``stop()`` and its last save to the state file short."""

    def __init__(self) -> None:
        self.signalled = False

    def __call__(self, signum: int, frame: Any) -> None:
        if not self.signalled:
            self.signalled = True
            raise KeyboardInterrupt


class Command(BaseCommand):
    help = (
        "Run the bundled provider simulator: a fake of the external betting provider "
        "(the signed protocol under /api, the demo accounts "
        f"{', '.join(account['user_id'] for account in DEMO_ACCOUNTS)} with no "
        "balance set, and unsigned fault-injection endpoints under /__control/). "
        "For development, demos, tests and benchmarks only: its control endpoints "
        "are unauthenticated, so keep it on 127.0.0.1. State lives in memory and is "
        "lost when it stops, unless --state-file keeps the accounts, balances, bets, "
        "bet id counter and config in a JSON file across restarts (fault rules and "
        "the RNG are not kept). Serves until Ctrl-C or SIGTERM."
    )
    requires_system_checks: list[str] = []  # it uses neither the database nor apps

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)"
        )
        parser.add_argument(
            "--port", type=int, default=8081, help="port to bind (default 8081)"
        )
        parser.add_argument(
            "--stake-mode",
            choices=STAKE_MODES,
            help="how the provider moves money (default: PROVIDER_STAKE_MODE)",
        )
        parser.add_argument(
            "--seed", type=int, help="seed the outcomes, for a repeatable run"
        )
        parser.add_argument(
            "--win-probability",
            type=float,
            default=0.5,
            help="chance that a bet wins, 0 to 1 (default 0.5)",
        )
        parser.add_argument(
            "--repeat-win",
            choices=REPEAT_WIN_MODES,
            default="refuse",
            help="a repeated /win for a settled bet: refuse it with 400 (default) "
            "or replay the first result",
        )
        parser.add_argument(
            "--first-bet-id",
            type=int,
            help="first bet id (default: from the clock, so a restarted simulator "
            "never repeats an id a server's database already holds)",
        )
        parser.add_argument(
            "--state-file",
            type=Path,
            metavar="PATH",
            help="keep the state in this JSON file: loaded at start if it exists "
            "(its stake mode, win probability, repeat-win and bet id counter win "
            "over the options above), saved after every change and on stop, deleted "
            "by POST /__control/reset (default: in memory only)",
        )
        parser.add_argument(
            "--reset-state",
            action="store_true",
            help="delete the --state-file first, to start empty",
        )
        parser.add_argument(
            "--latency-ms",
            type=float,
            default=0.0,
            metavar="MS",
            help="make every /api request wait this long before it is handled, as "
            "across a network; other requests go on meanwhile (default 0)",
        )
        parser.add_argument(
            "--jitter-ms",
            type=float,
            default=0.0,
            metavar="MS",
            help="vary each wait uniformly by up to this much either way, at most "
            "--latency-ms (default 0)",
        )
        parser.add_argument("--verbose", action="store_true", help="log every request")

    def handle(self, *args: Any, **options: Any) -> None:
        stake_mode = options["stake_mode"] or settings.PROVIDER_STAKE_MODE
        state_file: Path | None = options["state_file"]
        if options["reset_state"]:
            if state_file is None:
                raise CommandError("--reset-state needs --state-file")
            try:
                state_file.unlink(missing_ok=True)
            except OSError as exc:
                raise CommandError(f"cannot delete {state_file}: {exc}") from None
        try:
            server = ProviderSimulator(
                options["host"],
                options["port"],
                stake_mode=stake_mode,
                win_probability=options["win_probability"],
                seed=options["seed"],
                repeat_win=options["repeat_win"],
                first_bet_id=options["first_bet_id"],
                verbose=options["verbose"],
                state_file=state_file,
                latency_ms=options["latency_ms"],
                jitter_ms=options["jitter_ms"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(
                f"cannot listen on {options['host']}:{options['port']}: {exc}"
            ) from None
        if options["verbose"]:
            logging.getLogger("provider.simulator").setLevel(logging.INFO)
        ids = ", ".join(account["user_id"] for account in DEMO_ACCOUNTS)
        if state_file is None:
            kept = "state in memory"
        elif server.restored:
            restored = server.snapshot()
            kept = (
                f"state restored from {state_file}: {len(restored['bets'])} bets, "
                f"{len(restored['accounts'])} accounts"
            )
        else:
            kept = f"state kept in {state_file}"
        if server.latency.active:
            latency = server.latency
            kept += f"; latency {latency.latency_ms:g} +/- {latency.jitter_ms:g} ms"
        self.stdout.write(
            f"Provider simulator listening on {server.base_url} "
            f"({server.state.config.stake_mode}; demo accounts {ids}; {kept}; "
            "development only). Ctrl-C stops it."
        )
        self.stdout.flush()
        previous = self._handle_signals(_StopOnSignal())
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            try:
                server.stop()  # saves the last changes to the state file
            except StateFileError as exc:
                raise CommandError(str(exc)) from None
            finally:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
        snapshot = server.snapshot()
        settled = sum(1 for bet in snapshot["bets"] if bet["status"] != "open")
        self.stdout.write(
            f"Provider simulator stopped: {snapshot['requests_served']} requests "
            f"served, {len(snapshot['bets'])} bets placed, {settled} settled."
        )

    def _handle_signals(self, handler: _StopOnSignal) -> dict[int, Any]:
        """Install ``handler`` for SIGTERM and SIGINT (unless SIGINT is ignored, as
        in a background job); answers the handlers to restore."""
        if threading.current_thread() is not threading.main_thread():
            return {}  # only the main thread can handle signals
        previous: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            current = signal.getsignal(signum)
            if signum == signal.SIGINT and current == signal.SIG_IGN:
                continue
            previous[signum] = signal.signal(signum, handler)
            if previous[signum] is None:  # installed outside Python
                previous[signum] = signal.SIG_DFL
        return previous
