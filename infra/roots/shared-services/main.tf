# Shared services account: the ECR repositories (outrigger and the apps) that every member account
# pulls from, and the Private CA hierarchy whose subordinate is shared with the member accounts.

locals {
  name = "outrigger-${var.environment}"
  tags = merge(var.tags, {
    Project     = "outrigger"
    Environment = var.environment
    AccountRole = "shared-services"
    ManagedBy   = "terraform"
  })
}

module "ecr" {
  source = "../../modules/ecr"
  providers = {
    aws = aws.shared_services
  }

  repositories     = distinct(concat(["outrigger"], var.app_repositories))
  pull_account_ids = var.member_account_ids
  organization_id  = var.organization_id
  tags             = local.tags
}

module "private_ca" {
  source = "../../modules/private-ca"
  providers = {
    aws = aws.shared_services
  }

  name                    = local.name
  root_common_name        = "Outrigger ${var.environment} Root CA"
  subordinate_common_name = "Outrigger ${var.environment} Issuing CA"
  share_principals        = var.member_account_ids
  tags                    = local.tags
}
