"""KFP's cron, checked before anything is sent: six fields with seconds first, or a descriptor (@daily, @every 6h).

KFP's API server reads schedules with robfig/cron and refuses what it cannot read, but only after the upload;
croniter catches the common mistakes (a 5-field crontab line, a value out of range) here.
"""

from __future__ import annotations

import re

from boston_model.errors import first_line

CRON_HELP = ("6 fields: second minute hour day-of-month month day-of-week, e.g. '0 0 3 * * *' = every day at "
             "03:00 (the cluster's time zone, usually UTC)")
# robfig/cron's `@every <duration>` takes a Go duration: numbers with units, largest first by convention ("1h30m")
_GO_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h))+")


def validate_cron(expression: str) -> str:
    """Checks a KFP cron (6 fields, seconds first; or @daily, @every 6h, …); returns it with whitespace normalised.

    KFP's API server refuses what robfig/cron cannot read, but only after the upload: croniter catches the common
    mistakes (a 5-field crontab line, a value out of range) before anything is sent.

    Raises:
        ValueError: Not a 6-field cron or a known descriptor; the message says why.
    """
    from croniter import CroniterError, croniter

    text = " ".join(expression.split())
    if text.startswith("@"):
        if text.startswith("@every "):  # croniter does not know robfig's @every
            duration = text.removeprefix("@every ")
            if not _GO_DURATION.fullmatch(duration):
                raise ValueError(f"cron {expression!r}: {duration!r} is not a duration; use a number and a unit "
                                 "(s, m, h), e.g. '@every 6h' or '@every 1h30m'")
            return text
        if croniter.is_valid(text):
            return text
        raise ValueError(f"cron {expression!r}: unknown descriptor; use @hourly, @daily, @weekly, @monthly, "
                         "@yearly or '@every <duration>' such as '@every 6h'")
    fields = text.split(" ") if text else []
    if len(fields) != 6:
        hint = f"; prefix a seconds field: '0 {text}'" if len(fields) == 5 else ""
        raise ValueError(f"cron {expression!r} has {len(fields)} field(s); KFP's cron has {CRON_HELP}{hint}")
    try:  # robfig/cron reads '?' as '*' in every field, croniter only in the day fields
        croniter(text.replace("?", "*"), second_at_beginning=True)
    except CroniterError as exc:
        raise ValueError(f"cron {expression!r}: {first_line(exc)} (KFP's cron has {CRON_HELP})") from exc
    return text
