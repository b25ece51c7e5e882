# One provider per account, each assuming the deploy role there; modules get them explicitly.

provider "aws" {
  alias               = "shared_services"
  region              = var.region
  allowed_account_ids = [var.accounts.shared_services]

  assume_role {
    role_arn     = "arn:aws:iam::${var.accounts.shared_services}:role/${var.deploy_role_name}"
    session_name = "outrigger-${var.environment}-shared-services"
  }

  default_tags {
    tags = local.tags
  }
}
