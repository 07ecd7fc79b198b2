"""wallet alone writes money: no code outside ``wallet/`` (tests, migrations and
the provider simulator aside) names the money tables, writes their models or
assigns ``balance`` or ``held``. Read from the source, so a new shortcut fails
here before it reaches review."""

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

from wallet.models import Transaction, UserBalance

ROOT = Path(__file__).resolve().parents[2]
APPS = ("accounts", "auditlog", "betting", "betting_site", "provider")
MONEY_MODELS = {UserBalance.__name__, Transaction.__name__}
WRITES = {
    "create",
    "bulk_create",
    "bulk_update",
    "get_or_create",
    "update_or_create",
    "update",
    "delete",
    "save",
    "raw",
}
MONEY_FIELDS = {"balance", "held"}


def _sources() -> list[Path]:
    files = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            parts = set(path.relative_to(ROOT).parts)
            if parts & {"tests", "migrations", "simulator"}:
                continue
            files.append(path)
    return files


def _table_names() -> re.Pattern[str]:
    tables = "|".join(
        re.escape(model._meta.db_table) for model in (UserBalance, Transaction)
    )
    # "transactions" is also an English word and the bets' relation to their
    # entries: as a table it follows SQL's FROM/JOIN/INTO/UPDATE/TABLE.
    return re.compile(
        rf"\buser_balances\b|(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+[\"'`]?(?:{tables})\b",
        re.IGNORECASE,
    )


def _chain_names(node: ast.AST) -> set[str]:
    names = set()
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        if isinstance(node, ast.Attribute):
            names.add(node.attr)
            node = node.value
        elif isinstance(node, ast.Call):
            node = node.func
        else:
            node = node.value
    if isinstance(node, ast.Name):
        names.add(node.id)
    return names


def problems_in(source: str) -> list[str]:
    """What in ``source`` writes money outside wallet, one line each."""
    found = []
    tables = _table_names()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type in (tokenize.STRING, tokenize.COMMENT) and tables.search(
            token.string
        ):
            found.append(f"line {token.start[0]}: names a money table")
    for node in ast.walk(ast.parse(source)):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if isinstance(target, ast.Attribute) and target.attr in MONEY_FIELDS:
                found.append(f"line {node.lineno}: assigns .{target.attr}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in WRITES
            and _chain_names(node.func.value) & MONEY_MODELS
        ):
            found.append(f"line {node.lineno}: {node.func.attr}() on a money model")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "update"
            and {keyword.arg for keyword in node.keywords} & MONEY_FIELDS
        ):
            found.append(f"line {node.lineno}: update() of balance or held")
    return found


def test_no_code_outside_wallet_writes_money():
    offenders = {
        str(path.relative_to(ROOT)): problems
        for path in _sources()
        if (problems := problems_in(path.read_text()))
    }
    assert offenders == {}


@pytest.mark.parametrize(
    "source",
    [
        'cursor.execute("UPDATE user_balances SET held = 0")',
        "sql = 'INSERT INTO \"transactions\" (amount) VALUES (1)'",
        "# reads FROM transactions directly",
        "wallet.held = 0",
        "wallet.balance += amount",
        "UserBalance.objects.filter(user_id=1).update(external_balance=None)",
        "Transaction.objects.create(amount=1)",
        "Bet.objects.filter(pk=1).update(held=0)",
    ],
)
def test_the_check_sees_each_kind_of_write(source):
    assert problems_in(source)


@pytest.mark.parametrize(
    "source",
    [
        "UserBalance.objects.filter(user_id=1).first()",
        "Transaction.objects.filter(bet=bet).exists()",
        "with transaction.atomic():  # one of the database transactions\n    pass",
        "total = wallet.balance - wallet.held",
    ],
)
def test_reads_and_database_transactions_are_fine(source):
    assert problems_in(source) == []
