log_archive_bucket_name     = "outrigger-staging-log-archive-120000000002"
config_delivery_account_ids = ["120000000002"]
log_retention_days          = 90
