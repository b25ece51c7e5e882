# Values every root of staging reads. Account ids are placeholders: replace them with yours.
environment     = "staging"
region          = "us-east-1"
organization_id = "o-exampleorg1"

accounts = {
  networking      = "120000000001"
  security        = "120000000002"
  shared_services = "120000000003"
}
