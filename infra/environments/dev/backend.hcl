# S3 backend for every root of dev: one state bucket per environment, in the shared-services
# account, with S3-native state locking (a .tflock object beside the state; Terraform >= 1.10).
# Each root adds its own key: terraform init -backend-config=backend.hcl -backend-config="key=<root>/<instance>.tfstate"
# (infra/bin/tf does this for you).
bucket       = "outrigger-dev-tfstate-110000000003"
region       = "us-east-1"
encrypt      = true
use_lockfile = true

assume_role = {
  role_arn     = "arn:aws:iam::110000000003:role/OutriggerTerraformState"
  session_name = "outrigger-dev-state"
}
