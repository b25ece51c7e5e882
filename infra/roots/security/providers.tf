# One provider per account, each assuming the deploy role there; modules get them explicitly.

provider "aws" {
  alias               = "security"
  region              = var.region
  allowed_account_ids = [var.accounts.security]

  assume_role {
    role_arn     = "arn:aws:iam::${var.accounts.security}:role/${var.deploy_role_name}"
    session_name = "outrigger-${var.environment}-security"
  }

  default_tags {
    tags = local.tags
  }
}
