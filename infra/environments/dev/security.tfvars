log_archive_bucket_name     = "outrigger-dev-log-archive-110000000002"
config_delivery_account_ids = ["110000000002"]
log_retention_days          = 90
