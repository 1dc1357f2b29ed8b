"""When the backup quota is low: the warning `backup_quota_low` (the gauge `ges_retention_backup_quota_available` shows
what is left, and the alert GesRetentionBackupQuotaLow fires on its floor: 0..5).

GES answers only what is left (`available`, -1 = unlimited), not the quota. The rule (contract): low when
0 <= available <= max(5, 10% of (available + backups listed)), i.e. when what is left is at most five backups or a
tenth of what the project could hold. When retention falls behind, new backups fail with GES.7019.
"""

from __future__ import annotations

__all__ = ["MIN_LOW_THRESHOLD", "low_threshold", "quota_low"]

MIN_LOW_THRESHOLD = 5


def low_threshold(available: int, listed: int) -> float:
    """The most `available` may be for the quota to count as low."""
    return max(float(MIN_LOW_THRESHOLD), 0.1 * (available + listed))


def quota_low(available: int, listed: int) -> bool:
    """Whether `available` (-1 = unlimited) backups left is low for a project holding `listed` backups."""
    return 0 <= available <= low_threshold(available, listed)
