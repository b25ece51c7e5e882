log_archive_bucket_name     = "outrigger-prod-log-archive-130000000002"
config_delivery_account_ids = ["130000000002"]
log_retention_days          = 400
