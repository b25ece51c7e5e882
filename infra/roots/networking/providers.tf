# One provider per account, each assuming the deploy role there; modules get them explicitly.

provider "aws" {
  alias               = "networking"
  region              = var.region
  allowed_account_ids = [var.accounts.networking]

  assume_role {
    role_arn     = "arn:aws:iam::${var.accounts.networking}:role/${var.deploy_role_name}"
    session_name = "outrigger-${var.environment}-networking"
  }

  default_tags {
    tags = local.tags
  }
}
