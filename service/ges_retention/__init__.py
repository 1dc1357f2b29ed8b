"""ges-retention: retention policies for Huawei Cloud GES graph backups."""

__version__ = "0.1.0"
