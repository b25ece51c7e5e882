# Security account (the organization's delegated administrator for CloudTrail): the organization
# trail into the encrypted, versioned log archive bucket, and AWS Config for this account,
# delivering to the same bucket.

locals {
  name = "outrigger-${var.environment}"
  tags = merge(var.tags, {
    Project     = "outrigger"
    Environment = var.environment
    AccountRole = "security"
    ManagedBy   = "terraform"
  })
}

module "org_trail" {
  source = "../../modules/org-trail"
  providers = {
    aws = aws.security
  }

  name                     = local.name
  bucket_name              = var.log_archive_bucket_name
  config_delivery_accounts = distinct(concat([var.accounts.security], var.config_delivery_account_ids))
  log_retention_days       = var.log_retention_days
  tags                     = local.tags
}

module "config" {
  source = "../../modules/config-recorder"
  providers = {
    aws = aws.security
  }

  name           = local.name
  s3_bucket_name = module.org_trail.bucket_name
  s3_kms_key_arn = module.org_trail.kms_key_arn
  tags           = local.tags
}
