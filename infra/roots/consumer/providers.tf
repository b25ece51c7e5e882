# One provider per account, each assuming the deploy role there; modules get them explicitly.
# This root works in its own account (aws.consumer) and, for the transit gateway route table and
# the shared endpoints' hosted zones, in the networking account (aws.networking).

provider "aws" {
  alias               = "consumer"
  region              = var.region
  allowed_account_ids = [var.account_id]

  assume_role {
    role_arn     = "arn:aws:iam::${var.account_id}:role/${var.deploy_role_name}"
    session_name = "outrigger-${var.environment}-consumer-${var.service_name}"
  }

  default_tags {
    tags = local.tags
  }
}

provider "aws" {
  alias               = "networking"
  region              = var.region
  allowed_account_ids = [var.accounts.networking]

  assume_role {
    role_arn     = "arn:aws:iam::${var.accounts.networking}:role/${var.deploy_role_name}"
    session_name = "outrigger-${var.environment}-consumer-${var.service_name}"
  }

  default_tags {
    tags = local.tags
  }
}
