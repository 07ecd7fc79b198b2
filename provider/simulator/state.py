"""The simulated provider's accounts, bets and money rules.

Where the real provider's behaviour is unknown, the simulator answers like this
(the server's client must cope with any answer; this is one plausible provider):

- Reading a balance that was never set (``POST /balance`` without a body, or
  ``/check-balance``): 404 ``{"error": "Balance not set"}``.
- A second set-balance: 400 ``{"error": "Balance already set"}``; nothing changes.
- A repeated ``POST /win`` for a settled bet: with ``repeat_win="refuse"`` (the
  default) 400 ``{"error": "Bet already settled"}``; with ``"replay"`` the first
  result is answered again. Neither moves money.
- Placing a bet before the balance is set: 400 ``{"error": "Insufficient balance"}``.
- ``/win`` for an unknown bet or another account's bet: 404
  ``{"error": "Bet not found"}``.
- Bet ids are decimal strings of one increasing counter shared by every account.
- The stake mode is recorded on each bet when it is placed: switching the mode later
  settles open bets under the rules they were placed with.

Every refusal is ``{"error": ..., "message": ...}``. Money is ``Decimal`` throughout.

Every change to what ``export_data`` answers (the persisted part: accounts, balances,
bets, the bet id counter, the stake mode, win probability and repeat_win) bumps
``version`` and sets ``changed``, so that a ``persistence.StateStore`` can save it.
"""

import dataclasses
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

STAKE_MODES = ("debit_on_loss", "debit_on_place")
REPEAT_WIN_MODES = ("refuse", "replay")
BET_STATUSES = ("open", "won", "lost")
STATE_FORMAT = "provider-simulator-state"
STATE_FORMAT_VERSION = 1
MIN_BET = 1
MAX_BET = 5
WIN_MULTIPLIER = 2
ZERO = Decimal(0)

logger = logging.getLogger(__name__)


class Refused(Exception):
    """The provider says no: an HTTP status and an ``error``/``message`` body."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message

    def body(self) -> dict[str, str]:
        return {"error": self.error, "message": self.message}


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()  # "leave as it is", where None is a meaningful value


@dataclass(frozen=True)
class SimulatorConfig:
    stake_mode: str = "debit_on_loss"
    win_probability: float = 0.5
    seed: int | None = None
    repeat_win: str = "refuse"

    def validated(self) -> "SimulatorConfig":
        """A copy with values coerced and checked; raises ``ValueError``."""
        if self.stake_mode not in STAKE_MODES:
            raise ValueError(f"stake_mode must be one of: {', '.join(STAKE_MODES)}")
        if self.repeat_win not in REPEAT_WIN_MODES:
            modes = ", ".join(REPEAT_WIN_MODES)
            raise ValueError(f"repeat_win must be one of: {modes}")
        probability = self.win_probability
        if isinstance(probability, bool) or not isinstance(
            probability, int | float | Decimal
        ):
            raise ValueError("win_probability must be a number from 0 to 1")
        probability = float(probability)
        if not 0 <= probability <= 1:
            raise ValueError("win_probability must be a number from 0 to 1")
        seed = self.seed
        if isinstance(seed, Decimal) and seed.is_finite() and seed == int(seed):
            seed = int(seed)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError("seed must be an integer or null")
        return dataclasses.replace(self, win_probability=probability, seed=seed)

    def describe(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class Account:
    user_id: str
    username: str
    secret: str
    balance: Decimal | None = None  # None: never set
    held: Decimal = ZERO  # open debit_on_loss stakes: promised, not yet debited
    unsettled: Decimal = ZERO  # stakes of every open bet


@dataclass(slots=True)
class Bet:
    id: str
    user_id: str
    stake: Decimal
    stake_mode: str
    status: str = "open"  # open, won or lost
    win: Decimal | None = None


def _money(value: Any) -> Decimal | None:
    """A JSON number as a ``Decimal``; ``None`` for anything else (booleans too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        value = Decimal(repr(value))
    if isinstance(value, Decimal) and value.is_finite():
        return value
    return None


def _stake(value: Any) -> int | None:
    amount = _money(value)
    if amount is None or amount != amount.to_integral_value():
        return None
    if not MIN_BET <= amount <= MAX_BET:
        return None
    return int(amount)


def _bet_id(value: Any) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    amount = _money(value)
    if amount is None or amount != amount.to_integral_value():
        return None
    return str(int(amount))


def js_number(value: Decimal) -> str:
    """A number as ``JSON.stringify`` writes it: ``1006``, not ``1006.00``."""
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _result(win: Decimal) -> dict[str, Any]:
    if win > 0:
        return {"win": win, "message": "Congratulations! You won!"}
    return {"win": win, "message": "Better luck next time"}


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be a JSON object")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a JSON array")
    return value


def _stored_money(value: Any, where: str) -> Decimal | None:
    """Money as the state file holds it: a decimal string of at least 0, or null."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            amount = Decimal(value)
        except ArithmeticError:
            amount = None
        if amount is not None and amount.is_finite() and amount >= 0:
            return amount
    raise ValueError(f"{where} must be a decimal string of at least 0, or null")


def _import_bet(fields: dict[str, Any], index: int) -> Bet:
    where = f"bets[{index}]"
    bet_id, user_id = fields.get("id"), fields.get("user_id")
    if not (isinstance(bet_id, str) and bet_id and isinstance(user_id, str)):
        raise ValueError(f"{where}: id and user_id must be non-empty strings")
    stake = _stored_money(fields.get("stake"), f"{where}.stake")
    if stake is None or stake <= 0:
        raise ValueError(f"{where}.stake must be a positive decimal string")
    stake_mode, status = fields.get("stake_mode"), fields.get("status")
    if stake_mode not in STAKE_MODES:
        raise ValueError(f"{where}.stake_mode must be one of: {', '.join(STAKE_MODES)}")
    if status not in BET_STATUSES:
        raise ValueError(f"{where}.status must be one of: {', '.join(BET_STATUSES)}")
    win = _stored_money(fields.get("win"), f"{where}.win")
    if (win is None) != (status == "open"):
        raise ValueError(f"{where}: win must be null exactly when the bet is open")
    return Bet(bet_id, user_id, stake, stake_mode, status, win)


def _rng(seed: int | None, purpose: str) -> random.Random:
    # One generator per purpose, so that recommendations and fault rolls never
    # shift the sequence of bet outcomes a seed gives.
    return random.Random(None if seed is None else f"{purpose}:{seed}")  # noqa: S311


class ProviderState:
    """Accounts, bets and configuration behind one lock.

    The protocol operations take an authenticated user id and the parsed JSON body,
    and answer the response body or raise ``Refused``.
    """

    def __init__(
        self,
        *,
        config: SimulatorConfig,
        accounts: Iterable[Mapping[str, str]],
        first_bet_id: int | None = 1,
    ) -> None:
        self.lock = threading.Lock()
        self._initial_config = config.validated()
        self._initial_accounts = [dict(account) for account in accounts]
        self._first_bet_id = first_bet_id
        self._next_bet_id = 0
        self.version = 0  # bumped by every change to the persisted state
        self.changed = threading.Event()  # set by every such change
        self._restore()

    def _touch(self) -> None:
        # Called with the lock held, after a change to the persisted state.
        self.version += 1
        self.changed.set()

    def _restore(self) -> None:
        self.config = self._initial_config
        self.accounts: dict[str, Account] = {}
        for account in self._initial_accounts:
            self._add_account(**account)
        self.bets: dict[str, Bet] = {}
        self.calls: Counter[str] = Counter()
        if self._first_bet_id is not None:
            self._next_bet_id = self._first_bet_id
        else:
            # From the clock, so that a restarted simulator never hands out an id
            # that a server's database already holds from an earlier run.
            self._next_bet_id = max(time.time_ns() // 1_000_000, self._next_bet_id)
        self._seed(self.config.seed)

    def _seed(self, seed: int | None) -> None:
        self._outcome_rng = _rng(seed, "outcome")
        self._recommend_rng = _rng(seed, "recommend")

    # --- control -------------------------------------------------------------------

    def reset(self) -> int:
        """Back to the initial accounts (no balances), no bets, the initial config;
        answers the new ``version``."""
        with self.lock:
            self._restore()
            self._touch()
            return self.version

    def configure(
        self,
        *,
        stake_mode: str = UNSET,
        win_probability: float = UNSET,
        seed: int | None = UNSET,
        repeat_win: str = UNSET,
    ) -> SimulatorConfig:
        """Change the configuration; a new ``seed`` reseeds the outcomes."""
        changes: dict[str, Any] = {
            name: value
            for name, value in {
                "stake_mode": stake_mode,
                "win_probability": win_probability,
                "seed": seed,
                "repeat_win": repeat_win,
            }.items()
            if value is not UNSET
        }
        with self.lock:
            config = dataclasses.replace(self.config, **changes).validated()
            self.config = config
            if "seed" in changes:
                self._seed(config.seed)
            self._touch()
        return config

    def _add_account(
        self,
        user_id: str,
        secret: str,
        username: str | None = None,
        balance: Any = None,
    ) -> Account:
        if not isinstance(user_id, str) or not user_id:
            raise ValueError("user_id must be a non-empty string")
        if not isinstance(secret, str) or not secret:
            raise ValueError("secret must be a non-empty string")
        if username is None:
            username = f"user{user_id}"
        if not isinstance(username, str) or not username:
            raise ValueError("username must be a non-empty string")
        amount = None if balance is None else _money(balance)
        if balance is not None and (amount is None or amount < 0):
            raise ValueError("balance must be a number of at least 0, or null")
        existing = self.accounts.get(user_id)
        if existing is not None:
            if existing.secret == secret and existing.username == username:
                return existing  # adding the same account twice is harmless
            raise ValueError(f"account {user_id} exists with other credentials")
        account = Account(user_id, username, secret, amount)
        self.accounts[user_id] = account
        self._touch()
        return account

    def add_account(
        self,
        user_id: str,
        secret: str,
        username: str | None = None,
        balance: Any = None,
    ) -> Account:
        """Add an account (``balance`` None: not set); raises ``ValueError``."""
        with self.lock:
            return self._add_account(user_id, secret, username, balance)

    def set_balance(self, user_id: str, balance: Any) -> None:
        """Force an account's balance (None: never set), as drift from outside."""
        amount = None if balance is None else _money(balance)
        if balance is not None and (amount is None or amount < 0):
            raise ValueError("balance must be a number of at least 0, or null")
        with self.lock:
            account = self.accounts.get(user_id)
            if account is None:
                raise ValueError(f"unknown account {user_id}")
            account.balance = amount
            self._touch()

    def secret_for(self, user_id: str) -> str | None:
        account = self.accounts.get(user_id)
        return None if account is None else account.secret

    def count_call(self, key: str) -> None:
        with self.lock:
            self.calls[key] += 1

    def snapshot(self) -> dict[str, Any]:
        """Everything, as plain data (money as ``Decimal``); secrets left out."""
        with self.lock:
            return {
                "config": self.config.describe(),
                "accounts": [
                    {
                        "user_id": account.user_id,
                        "username": account.username,
                        "balance": account.balance,
                        "unsettled_stake": account.unsettled,
                    }
                    for account in self.accounts.values()
                ],
                "bets": [
                    {
                        "id": bet.id,
                        "user_id": bet.user_id,
                        "stake": bet.stake,
                        "stake_mode": bet.stake_mode,
                        "status": bet.status,
                        "win": bet.win,
                    }
                    for bet in self.bets.values()
                ],
                "calls": dict(self.calls),
                "next_bet_id": str(self._next_bet_id),
            }

    # --- persistence ---------------------------------------------------------------

    def export_data(self) -> tuple[int, dict[str, Any]]:
        """The ``version`` and the persisted state as JSON-ready data: money as
        strings, secrets included. See ``persistence`` for the format."""
        with self.lock:
            config = self.config
            data = {
                "format": STATE_FORMAT,
                "format_version": STATE_FORMAT_VERSION,
                "config": {
                    "stake_mode": config.stake_mode,
                    "win_probability": config.win_probability,
                    "repeat_win": config.repeat_win,
                },
                "next_bet_id": self._next_bet_id,
                "accounts": [
                    {
                        "user_id": account.user_id,
                        "username": account.username,
                        "secret": account.secret,
                        "balance": _text(account.balance),
                    }
                    for account in self.accounts.values()
                ],
                "bets": [
                    {
                        "id": bet.id,
                        "user_id": bet.user_id,
                        "stake": str(bet.stake),
                        "stake_mode": bet.stake_mode,
                        "status": bet.status,
                        "win": _text(bet.win),
                    }
                    for bet in self.bets.values()
                ],
            }
            return self.version, data

    def import_data(self, data: Any) -> None:
        """Replace the state with ``export_data``'s; raises ``ValueError`` naming what
        is wrong, and then changes nothing.

        The file's config wins over the one the simulator was started with (its seed
        stays). An account the simulator was started with and the file lacks is
        added without a balance; for one in both, the started-with credentials win
        (a warning is logged when they differ) and the file's balance stays.
        """
        data = _object(data, "the state")
        if data.get("format") != STATE_FORMAT:
            raise ValueError(f"not a simulator state file (format {STATE_FORMAT!r})")
        if data.get("format_version") != STATE_FORMAT_VERSION:
            raise ValueError(
                f"unsupported format_version {data.get('format_version')!r} "
                f"(expected {STATE_FORMAT_VERSION})"
            )
        stored = _object(data.get("config"), "config")
        # Unchecked values from the file: ``validated()`` checks and coerces them.
        stored_config: dict[str, Any] = {
            "stake_mode": stored.get("stake_mode"),
            "win_probability": stored.get("win_probability"),
            "repeat_win": stored.get("repeat_win"),
        }
        config = dataclasses.replace(self._initial_config, **stored_config).validated()
        next_bet_id = data.get("next_bet_id")
        if isinstance(next_bet_id, bool) or not isinstance(next_bet_id, int):
            raise ValueError("next_bet_id must be an integer")
        accounts = self._import_accounts(_list(data.get("accounts"), "accounts"))
        bets: dict[str, Bet] = {}
        for index, item in enumerate(_list(data.get("bets"), "bets")):
            bet = _import_bet(_object(item, f"bets[{index}]"), index)
            if bet.id in bets:
                raise ValueError(f"bets[{index}]: duplicate id {bet.id}")
            if bet.id.isdigit() and int(bet.id) >= next_bet_id:
                raise ValueError(f"next_bet_id must be above the bet id {bet.id}")
            account = accounts.get(bet.user_id)
            if account is None:
                raise ValueError(f"bets[{index}]: unknown account {bet.user_id}")
            if bet.status == "open":
                account.unsettled += bet.stake
                if bet.stake_mode == "debit_on_loss":
                    account.held += bet.stake
            bets[bet.id] = bet
        with self.lock:
            self.config = config
            self.accounts = accounts
            self.bets = bets
            self._next_bet_id = next_bet_id

    def _import_accounts(self, items: list[Any]) -> dict[str, Account]:
        accounts: dict[str, Account] = {}
        for index, item in enumerate(items):
            where = f"accounts[{index}]"
            fields = _object(item, where)
            values = [fields.get(name) for name in ("user_id", "username", "secret")]
            if not all(isinstance(value, str) and value for value in values):
                raise ValueError(
                    f"{where}: user_id, username and secret must be non-empty strings"
                )
            user_id, username, secret = cast(list[str], values)
            if user_id in accounts:
                raise ValueError(f"{where}: duplicate user_id {user_id}")
            balance = _stored_money(fields.get("balance"), f"{where}.balance")
            accounts[user_id] = Account(user_id, username, secret, balance)
        for initial in self._initial_accounts:
            user_id = initial["user_id"]
            username = initial.get("username") or f"user{user_id}"
            account = accounts.get(user_id)
            if account is None:
                accounts[user_id] = Account(user_id, username, initial["secret"])
            elif (account.secret, account.username) != (initial["secret"], username):
                logger.warning(
                    "Provider simulator: account %s has other credentials in the "
                    "state file; using the ones it was started with",
                    user_id,
                )
                account.secret, account.username = initial["secret"], username
        return accounts

    # --- protocol ------------------------------------------------------------------

    def _account(self, user_id: str) -> Account:
        account = self.accounts.get(user_id)
        if account is None:  # removed by a reset since the signature was checked
            raise Refused(401, "Unauthorized", "Unknown user")
        return account

    def authenticate(self, user_id: str, data: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            account = self._account(user_id)
            return {
                "message": "Successfully authenticated",
                "user_id": account.user_id,
                "username": account.username,
            }

    def balance(self, user_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """Set the balance once (``{"balance": N}``), or read it (no ``balance``)."""
        if "balance" not in data:
            with self.lock:
                balance = self._account(user_id).balance
            if balance is None:
                raise Refused(404, "Balance not set", "The balance has not been set")
            return {"balance": balance}
        amount = _money(data["balance"])
        if amount is None or amount <= 0:
            raise Refused(400, "Invalid balance", "balance must be a positive number")
        with self.lock:
            account = self._account(user_id)
            if account.balance is not None:
                raise Refused(
                    400, "Balance already set", "The balance can only be set once"
                )
            account.balance = amount
            self._touch()
        return {"message": "Balance set successfully", "balance": amount}

    def bet_recommend(self, user_id: str, data: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self._account(user_id)
            return {"bet": self._recommend_rng.randint(MIN_BET, MAX_BET)}

    def bet_place(self, user_id: str, data: dict[str, Any]) -> dict[str, Any]:
        amount = _stake(data.get("bet"))
        if amount is None:
            raise Refused(
                400,
                "Invalid bet",
                f"bet must be an integer from {MIN_BET} to {MAX_BET}",
            )
        stake = Decimal(amount)
        with self.lock:
            account = self._account(user_id)
            if account.balance is None:
                raise Refused(
                    400, "Insufficient balance", "The balance has not been set"
                )
            mode = self.config.stake_mode
            needed = stake + account.held if mode == "debit_on_loss" else stake
            if account.balance < needed:
                raise Refused(
                    400,
                    "Insufficient balance",
                    f"Balance {js_number(account.balance)} does not cover a bet of "
                    f"{amount} with {js_number(account.held)} held for open bets",
                )
            bet_id = str(self._next_bet_id)
            self._next_bet_id += 1
            if mode == "debit_on_place":
                account.balance -= stake
            else:
                account.held += stake
            account.unsettled += stake
            self.bets[bet_id] = Bet(bet_id, user_id, stake, mode)
            self._touch()
        return {"message": "Bet placed successfully", "bet_id": bet_id}

    def bet_settle(self, user_id: str, data: dict[str, Any]) -> dict[str, Any]:
        bet_id = _bet_id(data.get("bet_id"))
        if bet_id is None:
            raise Refused(400, "Invalid bet_id", "bet_id must be a string or a number")
        with self.lock:
            bet = self.bets.get(bet_id)
            if bet is None or bet.user_id != user_id:
                raise Refused(404, "Bet not found", f"No bet {bet_id} for this user")
            if bet.win is not None:
                if self.config.repeat_win == "replay":
                    return _result(bet.win)
                raise Refused(
                    400, "Bet already settled", f"Bet {bet_id} is already settled"
                )
            account = self._account(user_id)
            won = self._outcome_rng.random() < self.config.win_probability
            win = bet.stake * WIN_MULTIPLIER if won else ZERO
            balance = account.balance or ZERO  # None only after a forced set_balance
            if bet.stake_mode == "debit_on_loss":
                account.held -= bet.stake
                account.balance = balance + (win if won else -bet.stake)
            else:
                account.balance = balance + win
            account.unsettled -= bet.stake
            bet.status = "won" if won else "lost"
            bet.win = win
            self._touch()
        return _result(win)

    def balance_check(self, user_id: str, data: dict[str, Any]) -> dict[str, Any]:
        expected = _money(data.get("expected_balance"))
        if expected is None:
            raise Refused(
                400, "Invalid expected_balance", "expected_balance must be a number"
            )
        with self.lock:
            balance = self._account(user_id).balance
        if balance is None:
            raise Refused(404, "Balance not set", "The balance has not been set")
        if expected == balance:
            return {"is_correct": True, "balance": balance}
        return {
            "is_correct": False,
            "message": (
                f"Incorrect balance. Expected: {js_number(expected)}, "
                f"Actual: {js_number(balance)}"
            ),
            "correct_balance": balance,
        }
