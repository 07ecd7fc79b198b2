"""What the soak measures from its answers: the 5xx by kind, how long players were
blocked, and how the service recovered after each fault.

Every request of the traffic is an ``Answer``; times are seconds since the traffic
started. A bet is *blocked* when it is refused for a reason other than the bet
itself: 409 ``BET_IN_PROGRESS``, any 5xx, or no HTTP answer at all. A player is
blocked from the first such answer until a bet of theirs is accepted (201,
whatever the bet's status).
"""

from collections import Counter
from dataclasses import dataclass
from typing import Any

BET = "POST /api/bets"


@dataclass(frozen=True, slots=True)
class Answer:
    start: float
    end: float
    player: str
    request: str  # "POST /api/bets", "GET /api/balance", ...
    status: int  # 0: no HTTP answer
    label: str  # "201 completed", "503 SERVICE_UNAVAILABLE", "0 ClientOSError"

    @property
    def accepted(self) -> bool:
        return self.status == 201

    @property
    def blocking(self) -> bool:
        return (
            self.status == 0
            or self.status >= 500
            or self.label == "409 BET_IN_PROGRESS"
        )


def server_errors(answers: list[Answer]) -> dict[str, Any]:
    """The 5xx answers by kind (status and error code), in all and by request."""
    by_kind: Counter[str] = Counter()
    by_request: dict[str, Counter[str]] = {}
    for answer in answers:
        if answer.status >= 500:
            by_kind[answer.label] += 1
            by_request.setdefault(answer.request, Counter())[answer.label] += 1
    return {
        "total": sum(by_kind.values()),
        "by_kind": dict(by_kind.most_common()),
        "by_request": {
            request: dict(counter.most_common())
            for request, counter in sorted(by_request.items())
        },
        "500s": sum(n for label, n in by_kind.items() if label.startswith("500")),
    }


def _bets_by_player(answers: list[Answer]) -> dict[str, list[Answer]]:
    players: dict[str, list[Answer]] = {}
    for answer in answers:
        if answer.request == BET:
            players.setdefault(answer.player, []).append(answer)
    for bets in players.values():
        bets.sort(key=lambda a: a.start)
    return players


def blocks(answers: list[Answer], traffic_end: float) -> list[dict[str, Any]]:
    """Every time a player was blocked, longest first: from the first blocking
    answer's request to the end of the next accepted bet (or the traffic's end,
    ``unblocked`` false)."""
    found = []
    for player, bets in _bets_by_player(answers).items():
        began: float | None = None
        why: Counter[str] = Counter()
        for bet in bets:
            if bet.blocking:
                if began is None:
                    began = bet.start
                    why = Counter()
                why[bet.label] += 1
            elif bet.accepted and began is not None:
                found.append(_block(player, began, bet.end, why, unblocked=True))
                began = None
        if began is not None:
            found.append(_block(player, began, traffic_end, why, unblocked=False))
    found.sort(key=lambda block: -block["seconds"])
    return found


def _block(
    player: str, began: float, ended: float, why: Counter[str], *, unblocked: bool
) -> dict[str, Any]:
    return {
        "player": player,
        "from_s": round(began, 2),
        "seconds": round(ended - began, 2),
        "answers": dict(why.most_common()),
        "unblocked": unblocked,
    }


def recovery(
    answers: list[Answer], faults: list[dict[str, Any]], traffic_end: float
) -> list[dict[str, Any]]:
    """Per fault (``at_s``, ``what``, ``back_after_s``): the first bet accepted
    after it, the blocking answers until the next fault, and for the players who
    had a bet in flight when it struck, how their bet ended and when their next
    bet was accepted, from the fault and from when what it struck was back."""
    bets = sorted((a for a in answers if a.request == BET), key=lambda a: a.start)
    players = _bets_by_player(answers)
    out = []
    ordered = sorted(faults, key=lambda f: f["at_s"])
    for index, fault in enumerate(ordered):
        at = fault["at_s"]
        until = ordered[index + 1]["at_s"] if index + 1 < len(ordered) else traffic_end
        first_ok = next((b.end for b in bets if b.start >= at and b.accepted), None)
        window = [b for b in answers if at <= b.end < until]
        blocking = [b for b in window if b.blocking]
        in_flight = [b for b in bets if b.start < at < b.end]
        back = at + fault.get("back_after_s", 0.0)
        waits = []
        # From the later of the restart and the in-flight bet's own answer: a bet
        # slowed by the provider's faults (a 2.5 s delay, its retries) may answer
        # seconds after the fault, and that time is the provider's, not a block.
        after_answer = []
        never = 0
        for bet in in_flight:
            accepted = _next_accepted(players[bet.player], bet)
            if accepted is None:
                never += 1
            else:
                waits.append(accepted - at)
                after_answer.append(max(0.0, accepted - max(back, bet.end)))
        out.append(
            {
                **fault,
                "first_bet_accepted_after_s": (
                    None if first_ok is None else round(first_ok - at, 2)
                ),
                "blocking_answers_until_next_fault": dict(
                    Counter(b.label for b in blocking).most_common()
                ),
                "last_blocking_answer_after_s": (
                    round(max(b.end for b in blocking) - at, 2) if blocking else None
                ),
                "bets_in_flight": len(in_flight),
                "bets_in_flight_answers": dict(
                    Counter(b.label for b in in_flight).most_common()
                ),
                "in_flight_next_bet_accepted_max_s": (
                    round(max(waits), 2) if waits else None
                ),
                # The same from when the server or store was back: what the
                # service, not the restart, made the players wait.
                "in_flight_next_bet_accepted_after_back_max_s": (
                    round(max(0.0, max(waits) + at - back), 2) if waits else None
                ),
                "in_flight_next_bet_accepted_after_answer_max_s": (
                    round(max(after_answer), 2) if after_answer else None
                ),
                "in_flight_players_never_accepted": never,
            }
        )
    return out


def _next_accepted(bets: list[Answer], bet: Answer) -> float | None:
    """When the player's bet ``bet`` or a later one was accepted."""
    if bet.accepted:
        return bet.end
    for later in bets:
        if later.start >= bet.end and later.accepted:
            return later.end
    return None
