"""Cron for recurring runs: checked locally, because KFP's API stores a schedule its scheduler cannot read.

KFP's scheduler parses cron with robfig/cron: 6 fields, seconds first, or a descriptor. ``croniter`` reads the
values (numbers and month/day names within a field's bounds) and the whole expression; what this module adds is
where robfig/cron is stricter than croniter, which also reads Quartz and Jenkins extensions: exactly 6 fields,
Sunday only as 0, no ranges that wrap around, no ``L``/``W``/``#``/``H``; and ``@every <duration>``, which
croniter does not know.
"""

from __future__ import annotations

import re

from pipeline.submit.errors import CronError

# (name, low, high) of each field in KFP's order; the bounds are robfig/cron's.
_FIELDS = (("second", 0, 59), ("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31), ("month", 1, 12),
           ("day-of-week", 0, 6))
# croniter's expansion lists the fields minute, hour, day-of-month, month, day-of-week, second.
_EXPANDED_INDEX = (5, 0, 1, 2, 3, 4)
_NEUTRAL = ("0", "0", "0", "*", "*", "*")  # a valid expression to read one field's value in
_DESCRIPTORS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
# One comma-separated term in robfig/cron's grammar: *, ?, a value or a range, and an optional /step.
_TERM = re.compile(r"(?:\*|\?|(?P<low>\d+|[A-Za-z]+)(?:-(?P<high>\d+|[A-Za-z]+))?)(?:/(?P<step>\d+))?")
_GO_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+")
CRON_HELP = ("6 fields: second minute hour day-of-month month day-of-week, e.g. '0 0 3 * * *' = every day at "
             "03:00 (the cluster's time zone, usually UTC)")


def validate_cron(expression: str) -> str:
    """Checks a KFP cron expression (6 fields, seconds first; or @daily, @every 6h, …).

    Returns:
        The expression with its whitespace normalised.

    Raises:
        CronError: The expression would be rejected by the scheduler; the message says why.
    """
    from croniter import croniter

    text = " ".join(expression.split())
    if text.startswith("@"):
        if text in _DESCRIPTORS:
            return text
        if text.startswith("@every ") and _GO_DURATION.fullmatch(text[len("@every "):]):
            return text
        raise CronError(f"cron {expression!r}: unknown descriptor; use one of {', '.join(sorted(_DESCRIPTORS))}"
                        " or '@every <duration>' such as '@every 6h'")
    fields = text.split(" ") if text else []
    if len(fields) != 6:
        hint = f"; prefix a seconds field: '0 {text}'" if len(fields) == 5 else ""
        raise CronError(f"cron {expression!r} has {len(fields)} field(s); KFP's cron has {CRON_HELP}{hint}")
    for index, value in enumerate(fields):
        problem = _field_problem(index, value)
        if problem:
            raise CronError(f"cron {expression!r}: {problem}")
    # robfig/cron reads '?' as '*' in every field; croniter only in the day fields.
    if not croniter.is_valid(text.replace("?", "*"), second_at_beginning=True):
        raise CronError(f"cron {expression!r} is not a valid cron expression ({CRON_HELP})")
    return text


def _field_problem(index: int, value: str) -> str:
    """What is wrong with one field, or "" when robfig/cron would read it."""
    name, low, high = _FIELDS[index]
    for term in value.split(","):
        match = _TERM.fullmatch(term)
        if match is None:
            return f"cannot read {name} field {value!r}"
        numbers = []
        for token in (t for t in (match["low"], match["high"]) if t is not None):
            number = _value(index, token)
            if number is None:
                return f"{name} value {token!r} is not a number" + (" or a name" if not token.isdigit() else "")
            if not low <= number <= high:
                return f"{name} value {token!r} is outside {low}-{high}"
            numbers.append(number)
        if len(numbers) == 2 and numbers[0] > numbers[1]:
            return f"{name} range {term!r} runs backwards"
        if match["step"] is not None and int(match["step"]) < 1:
            return f"{name} step must be at least 1"
    return ""


def _value(index: int, token: str) -> int | None:
    """croniter's reading of one value of field ``index`` (a number, or a month or weekday name), else None."""
    from croniter import CroniterError, croniter

    if token.isdigit():
        return int(token)  # the bounds are robfig/cron's (croniter also reads day-of-week 7)
    probe = list(_NEUTRAL)
    probe[index] = token
    try:
        expanded = croniter.expand(" ".join(probe), second_at_beginning=True)[0][_EXPANDED_INDEX[index]]
    except CroniterError:
        return None
    # One name is one value; anything else (croniter's "L", say) is an extension robfig/cron lacks.
    return expanded[0] if len(expanded) == 1 and isinstance(expanded[0], int) else None
